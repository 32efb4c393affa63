"""Smoke tests proving the real-service test support works (tests/support)."""

from __future__ import annotations

import io
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import paramiko
import psycopg
import pytest
import sqlalchemy as sa
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.support.browser import LiveServer, screenshot
from tests.support.dovecot import DovecotServer
from tests.support.postgres import (
    RedisNamespace,
    RedisTestDb,
    TempDatabase,
    create_database,
    database_exists,
    drop_database,
)
from tests.support.services import free_port, port_open, require
from tests.support.sftp import SftpServer, fingerprint_sha256
from tests.support.smtp import SmtpServer


def _raw_mail(subject: str, message_id: str, body: str = "Corpo da mensagem.") -> bytes:
    message = EmailMessage()
    message["From"] = "Boavista <integracao@boavistatecnologia.com.br>"
    message["To"] = "atendimento@vetorsolucoes.com.br"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(body)
    return bytes(message)


# -- services.py ----------------------------------------------------------------------------


def test_require_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="dovecot unavailable: not installed"):
        require("dovecot", "not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="dovecot unavailable: not installed"):
        require("dovecot", "not installed")


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert not port_open("127.0.0.1", port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# -- Dovecot --------------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_dovecot_login(imap_mailbox: DovecotServer, security: str) -> None:
    client = imap_mailbox.connect(security)  # type: ignore[arg-type]
    try:
        encrypted = isinstance(client._imap.sock, ssl.SSLSocket)
        assert encrypted == (security != "none")
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


def test_dovecot_refuses_wrong_password(imap_mailbox: DovecotServer) -> None:
    with pytest.raises(LoginError):
        imap_mailbox.connect(password="wrong")


def test_dovecot_certificate_is_verified_by_clients(imap_mailbox: DovecotServer) -> None:
    untrusting = ssl.create_default_context()  # system CAs only: the self-signed cert is unknown
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(imap_mailbox.host, port=imap_mailbox.ssl_port, ssl_context=untrusting, timeout=5)


def test_dovecot_append_search_fetch(imap_mailbox: DovecotServer) -> None:
    assert imap_mailbox.uids() == []
    first = _raw_mail("Cliente habilitado no E-extrato", "<m1@boavista>")
    second = _raw_mail("Outro assunto", "<m2@boavista>")
    uid1 = imap_mailbox.append(first, flags=[r"\Flagged"])
    uid2 = imap_mailbox.append(second)
    assert uid2 > uid1
    assert imap_mailbox.uids() == [uid1, uid2]
    assert b"\\Flagged" in imap_mailbox.flags(uid1)
    assert b"\\Seen" not in imap_mailbox.flags(uid2)

    with imap_mailbox.session() as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search(["SUBJECT", "E-extrato"]) == [uid1]

    fetched = imap_mailbox.fetch_all()
    assert [m.uid for m in fetched] == [uid1, uid2]
    assert [m.raw.replace(b"\r\n", b"\n") for m in fetched] == [first, second]
    # fetch_all peeks: nothing became \Seen.
    assert all(b"\\Seen" not in m.flags for m in fetched)


def test_dovecot_folders_are_fresh_per_test_and_created_on_demand(imap_mailbox: DovecotServer) -> None:
    assert imap_mailbox.folders() == ["INBOX"]
    imap_mailbox.create_folder("Processados")
    uid = imap_mailbox.append(_raw_mail("x", "<p1@x>"), folder="Processados")
    assert imap_mailbox.uids("Processados") == [uid]
    assert imap_mailbox.folders() == ["INBOX", "Processados"]


@pytest.mark.parametrize("folder", ["Processados", "INBOX"])
def test_dovecot_recreate_folder_changes_uidvalidity(imap_mailbox: DovecotServer, folder: str) -> None:
    imap_mailbox.create_folder(folder)
    for n in range(3):
        imap_mailbox.append(_raw_mail(f"m{n}", f"<r{n}@x>"), folder=folder)
    before = imap_mailbox.uidvalidity(folder)
    assert imap_mailbox.uids(folder) == [1, 2, 3]

    after = imap_mailbox.recreate_folder(folder)

    assert after != before
    assert imap_mailbox.uidvalidity(folder) == after
    assert imap_mailbox.uids(folder) == []
    # UIDs start over, so a client that ignores UIDVALIDITY would skip this message.
    assert imap_mailbox.append(_raw_mail("new", "<new@x>"), folder=folder) == 1


def test_dovecot_stop_start_and_kill(imap_mailbox: DovecotServer) -> None:
    uid = imap_mailbox.append(_raw_mail("persist", "<s1@x>"))

    imap_mailbox.stop()
    assert not imap_mailbox.running
    with pytest.raises(ConnectionRefusedError):
        imap_mailbox.connect(timeout=2)

    imap_mailbox.start()
    assert imap_mailbox.uids() == [uid]

    imap_mailbox.kill()
    with pytest.raises(ConnectionRefusedError):
        imap_mailbox.connect(timeout=2)
    imap_mailbox.restart()
    assert imap_mailbox.uids() == [uid]


def test_dovecot_env_matches_spec_names(imap_mailbox: DovecotServer) -> None:
    env = imap_mailbox.env("starttls")
    assert env == {
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": str(imap_mailbox.port),
        "IMAP_USER": "atendimento@vetorsolucoes.com.br",
        "IMAP_PASSWORD": "secret",
        "IMAP_SECURITY": "starttls",
    }
    assert imap_mailbox.env()["IMAP_PORT"] == str(imap_mailbox.ssl_port)


# -- SMTP -----------------------------------------------------------------------------------


def _outgoing(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "atendimento@vetorsolucoes.com.br"
    message["To"] = "financeiro@example.com"
    message["Subject"] = subject
    message.set_content("Solicitação de faturamento: R$ 1.234,56")
    return message


def test_smtp_receives_and_restarts_on_same_port(smtp_server: SmtpServer) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.send_message(_outgoing("Faturamento da integração"), to_addrs=["fin@example.com"])
    [mail] = smtp_server.wait_for(1)
    assert mail.mail_from == "atendimento@vetorsolucoes.com.br"
    assert mail.rcpt_tos == ("fin@example.com",)
    assert mail.message["Subject"] == "Faturamento da integração"
    assert "R$ 1.234,56" in mail.message.get_content()

    port = smtp_server.port
    smtp_server.stop()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(smtp_server.host, port, timeout=2)
    smtp_server.start()
    assert smtp_server.port == port
    with smtplib.SMTP(smtp_server.host, port, timeout=5) as client:
        client.send_message(_outgoing("De novo"))
    assert [m.message["Subject"] for m in smtp_server.wait_for(2)] == ["Faturamento da integração", "De novo"]


def test_smtp_temporary_failure_keeps_nothing(smtp_server: SmtpServer) -> None:
    smtp_server.fail_with("451 4.3.0 try later")
    with (
        smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client,
        pytest.raises(smtplib.SMTPDataError) as info,
    ):
        client.send_message(_outgoing("refused"))
    assert info.value.smtp_code == 451
    assert smtp_server.messages == []
    smtp_server.fail_with(None)
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.send_message(_outgoing("accepted"))
    assert len(smtp_server.wait_for(1)) == 1


def test_smtp_starttls_with_auth(smtp_server_factory: Callable[..., SmtpServer]) -> None:
    server = smtp_server_factory(security="starttls", users={"desk": "s3cret"}, require_tls=True)
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPNotSupportedError):
            client.login("desk", "s3cret")  # AUTH is only offered after STARTTLS
        client.starttls(context=server.ssl_context())
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("desk", "wrong")
        client.login("desk", "s3cret")
        client.send_message(_outgoing("tls"))
    [mail] = server.wait_for(1)
    assert mail.authenticated_as == "desk"
    assert mail.over_tls
    assert server.env() == {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(server.port),
        "SMTP_SECURITY": "starttls",
        "SMTP_USER": "desk",
        "SMTP_PASSWORD": "s3cret",
    }


def test_smtp_implicit_tls(smtp_server_factory: Callable[..., SmtpServer]) -> None:
    server = smtp_server_factory(security="ssl", users={"desk": "s3cret"})
    with smtplib.SMTP_SSL(server.host, server.port, timeout=5, context=server.ssl_context()) as client:
        client.login("desk", "s3cret")
        client.send_message(_outgoing("ssl"))
    [mail] = server.wait_for(1)
    assert mail.over_tls and mail.authenticated_as == "desk"


# -- Browser --------------------------------------------------------------------------------

_PAGE = b"""<!doctype html>
<html lang="pt-BR"><head><meta charset="utf-8"><title>Teste</title></head>
<body><h1>Fila de atendimento</h1>
<button id="go">Validar</button><p id="out">aguardando</p>
<script>
document.getElementById('go').addEventListener('click', async () => {
  const r = await fetch('/api/ping');
  document.getElementById('out').textContent = await r.text();
});
</script></body></html>"""


def _tiny_wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/api/ping":
        body = "validação concluída".encode()
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [body]
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [_PAGE]


def test_browser_clicks_and_screenshots_live_server(
    page: Any, live_server_factory: Callable[[Any], LiveServer]
) -> None:
    server = live_server_factory(_tiny_wsgi_app)
    assert server.url == f"http://127.0.0.1:{server.port}"
    page.goto(server.url + "/")
    assert page.locator("h1").inner_text() == "Fila de atendimento"
    page.click("#go")
    page.wait_for_function("document.getElementById('out').textContent !== 'aguardando'")
    assert page.locator("#out").inner_text() == "validação concluída"

    path = screenshot(page, "support-smoke/live server")
    assert path.parent.name == "screenshots" and path.name == "support-smoke_live_server.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    server.stop()
    assert not port_open("127.0.0.1", server.port)


# -- SFTP -----------------------------------------------------------------------------------


def test_sftp_put_get_with_checked_host_key(sftp_server: SftpServer) -> None:
    assert list(sftp_server.root_folder.iterdir()) == []
    assert sftp_server.host_key_fingerprint.startswith("SHA256:")
    host_key_line = sftp_server.host_key_path.with_suffix(".pub").read_text()
    assert sftp_server.host_key_fingerprint == fingerprint_sha256(host_key_line)

    with sftp_server.client() as sftp:
        sftp.mkdir("/outbox")
        sftp.putfo(io.BytesIO(b"remessa;1\n"), "/outbox/remessa.csv")
        got = io.BytesIO()
        sftp.getfo("/outbox/remessa.csv", got)
        assert got.getvalue() == b"remessa;1\n"
        assert sftp.listdir("/") == ["outbox"]
    # The client is chrooted: its "/" is the server's root folder.
    assert (sftp_server.root_folder / "outbox" / "remessa.csv").read_bytes() == b"remessa;1\n"


def test_sftp_refuses_wrong_or_unknown_host_key(sftp_server: SftpServer, tmp_path: Path) -> None:
    wrong = sftp_server.write_wrong_known_hosts()
    with pytest.raises(paramiko.BadHostKeyException), sftp_server.client(wrong):
        pass
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"), sftp_server.client(empty):
        pass


def test_sftp_refuses_unknown_client_key(sftp_server: SftpServer) -> None:
    ssh = paramiko.SSHClient()
    ssh.load_host_keys(str(sftp_server.known_hosts_path))
    ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
    key = paramiko.ECDSAKey.generate()  # a valid key that is not in authorized_keys
    try:
        with pytest.raises(paramiko.AuthenticationException):
            ssh.connect(
                sftp_server.host,
                port=sftp_server.port,
                username=sftp_server.username,
                pkey=key,
                look_for_keys=False,
                allow_agent=False,
                timeout=5,
            )
    finally:
        ssh.close()


def test_sftp_stop_and_start(sftp_server: SftpServer) -> None:
    sftp_server.stop()
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError), sftp_server.client(timeout=2):
        pass
    sftp_server.start()
    with sftp_server.client() as sftp:
        assert sftp.listdir("/") == []


# -- PostgreSQL / Redis ---------------------------------------------------------------------


def test_postgres_database_is_private_and_usable(postgres_database: TempDatabase) -> None:
    assert postgres_database.url == f"postgresql+psycopg://postgres@127.0.0.1:5432/{postgres_database.name}"
    engine = sa.create_engine(postgres_database.url)
    try:
        with engine.begin() as conn:
            assert conn.scalar(sa.text("SELECT current_database()")) == postgres_database.name
            conn.execute(sa.text("CREATE TABLE t (id int primary key)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM t")) == 1
    finally:
        engine.dispose()


def test_postgres_drop_ends_open_connections(postgres_database_factory: Callable[..., TempDatabase]) -> None:
    database = create_database("dropme")
    try:
        assert database_exists(database.name)
        lingering = psycopg.connect(database.conninfo)
        drop_database(database)
        assert not database_exists(database.name)
        with pytest.raises(psycopg.OperationalError):
            lingering.execute("SELECT 1")
        lingering.close()
    finally:
        drop_database(database)


def test_redis_db_is_leased_exclusively(redis_db: RedisTestDb) -> None:
    assert redis_db.url == f"redis://127.0.0.1:6379/{redis_db.db}"
    assert redis_db.client.dbsize() == 0
    redis_db.client.set("rq:job:1", "x")
    other = RedisTestDb()
    try:
        assert other.db != redis_db.db
    finally:
        other.release()
    assert redis_db.client.get("rq:job:1") == b"x"


def test_redis_namespace_flushes_only_its_keys(redis_namespace: RedisNamespace) -> None:
    neighbour = RedisNamespace()
    try:
        redis_namespace.client.set(redis_namespace.key("a"), "1")
        redis_namespace.client.set(redis_namespace.key("b"), "2")
        neighbour.client.set(neighbour.key("a"), "kept")
        assert redis_namespace.flush() == 2
        assert redis_namespace.keys() == []
        assert neighbour.client.get(neighbour.key("a")) == b"kept"
    finally:
        neighbour.close()
