"""The integrator adapter over a local folder and over a real SFTP server (private sshd on loopback)."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reconciliation import exchange, records
from reconciliation.exchange import (
    BOAVISTA_PROVISIONAL,
    ExchangeError,
    FolderTransport,
    HostKeyError,
    IntegratorAdapter,
    SftpSettings,
    SftpTransport,
)
from tests.support.sftp import SftpServer

SP = ZoneInfo("America/Sao_Paulo")


def receipt(sale_id: str, amount: int = 12345) -> records.Receipt:
    return records.Receipt(
        sale_id=sale_id,
        establishment_code="1020304050",
        sale_datetime=datetime(2025, 3, 10, 14, 30, tzinfo=SP),
        amount_cents=amount,
        payment_type="credit",
        brand="Visa",
        acquirer="cielo",
        installments=2,
        authorization_code="a1b2c3",
        nsu="123456",
        origin="sale",
    )


# --- folder ----------------------------------------------------------------------------------


def test_folder_remessa_is_written_whole_under_the_layout_name(tmp_path: Path) -> None:
    adapter = IntegratorAdapter(FolderTransport(tmp_path / "troca"))
    sent = adapter.send_remessa("1020304050", date(2025, 3, 10), [receipt("V1"), receipt("V2", 500)], SP)
    assert sent.name == "REMESSA_1020304050_20250310.csv" and sent.receipts == 2
    outbox = tmp_path / "troca" / "outbox"
    assert sorted(os.listdir(outbox)) == [sent.name]  # no temporary file left behind
    lines = (outbox / sent.name).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("sale_id,establishment_code,sale_datetime,amount")
    assert lines[1].startswith(
        "V1,1020304050,2025-03-10T14:30:00,123.45,credit,visa,cielo,2,A1B2C3,123456,sale"
    )
    # Sent again the same day: the file is replaced, never duplicated or half written.
    adapter.send_remessa("1020304050", date(2025, 3, 10), [receipt("V1")], SP)
    assert sorted(os.listdir(outbox)) == [sent.name]
    assert len((outbox / sent.name).read_text(encoding="utf-8").splitlines()) == 2


def test_folder_inbox_lists_only_finished_files_and_archives_each_once(tmp_path: Path) -> None:
    transport = FolderTransport(tmp_path)
    inbox = tmp_path / "inbox"
    (inbox / "RETORNO_B.csv").write_text("b")
    (inbox / "RETORNO_A.csv").write_text("a")
    (inbox / ".RETORNO_C.csv.part").write_text("still being written")
    (inbox / "RETORNO_D.csv.tmp").write_text("still being written")
    (inbox / "notes.txt").write_text("not a retorno")
    (inbox / "sub.csv").mkdir()
    adapter = IntegratorAdapter(transport)
    assert adapter.pending_retornos() == ["RETORNO_A.csv", "RETORNO_B.csv"]
    fetched = adapter.fetch_retorno("RETORNO_A.csv")
    assert fetched.csv == b"a" and fetched.size == 1 and len(fetched.raw_sha256) == 64
    assert adapter.archive("RETORNO_A.csv") == "inbox/archive/RETORNO_A.csv"
    (inbox / "RETORNO_A.csv").write_text("a again")  # same name delivered again later
    assert adapter.archive("RETORNO_A.csv") == "inbox/archive/RETORNO_A.csv.1"
    assert adapter.archive("RETORNO_B.csv", rejected=True) == "inbox/rejected/RETORNO_B.csv"
    assert adapter.pending_retornos() == []
    assert (inbox / "archive" / "RETORNO_A.csv").read_text() == "a"
    assert adapter.archive("RETORNO_B.csv") == ""  # already gone: nothing to do


@pytest.mark.parametrize("name", ["../escape.csv", "a/b.csv", "", ".."])
def test_folder_refuses_names_outside_its_folders(tmp_path: Path, name: str) -> None:
    transport = FolderTransport(tmp_path)
    with pytest.raises(ExchangeError):
        transport.put(name, b"x")
    with pytest.raises(ExchangeError):
        transport.read(name)


def test_folder_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ExchangeError, match="pasta de troca inacessível"):
        FolderTransport(blocker / "troca")


def test_provisional_layout_passes_the_section_7_csv_through() -> None:
    assert BOAVISTA_PROVISIONAL.retorno_csv("RETORNO.csv", b"record_id\n") == b"record_id\n"
    assert BOAVISTA_PROVISIONAL.is_retorno("retorno_x.CSV")
    assert not BOAVISTA_PROVISIONAL.is_retorno("retorno_x.zip")
    assert BOAVISTA_PROVISIONAL.remessa_name("EC/../1", date(2025, 1, 2)) == "REMESSA_EC_1_20250102.csv"


# --- SFTP settings ---------------------------------------------------------------------------


def test_sftp_settings_require_a_host_key_and_a_credential() -> None:
    with pytest.raises(ExchangeError) as missing:
        SftpSettings.from_dict({"host": "sftp.boavista.example", "username": "vetor"})
    assert "chave pública do servidor" in str(missing.value) and "chave privada" in str(missing.value)
    with pytest.raises(ExchangeError, match="porta"):
        SftpSettings.from_dict({"host": "h", "username": "u", "port": "abc"})
    with pytest.raises(ExchangeError, match="variável de ambiente"):
        SftpSettings.from_dict(
            {"host": "h", "username": "u", "host_key": "ssh-ed25519 AAAA", "password_env": "bad name"}
        )
    ok = SftpSettings.from_dict(
        {
            "host": "h",
            "username": "u",
            "host_key": "ssh-ed25519  AAAA  ",
            "password_env": "BOAVISTA_SFTP_PASSWORD",
        }
    )
    assert ok.host_key == "ssh-ed25519 AAAA" and ok.port == 22
    line = SftpSettings.from_dict(
        {
            "host": "h",
            "username": "u",
            "key_file": "/k",
            "host_key": "[h]:2222 ssh-ed25519 AAAAC3Nz test-host",
        }
    )
    assert line.host_key == "ssh-ed25519 AAAAC3Nz"  # a known_hosts line is accepted as is
    for garbage in ("AAAA", "ssh-ed25519 não-é-base64!", "rsa AAAA"):
        with pytest.raises(ExchangeError, match="formato 'tipo base64'"):
            SftpSettings.from_dict({"host": "h", "username": "u", "key_file": "/k", "host_key": garbage})


# --- SFTP against the private sshd -------------------------------------------------------------


def sftp_settings(server: SftpServer, **extra: str) -> SftpSettings:
    data = {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "key_file": str(server.client_key_path),
        "known_hosts_file": str(server.known_hosts_path),
        "outbox_dir": "remessas",
        "inbox_dir": "retornos",
    }
    data.update(extra)
    return SftpSettings.from_dict(data)


def test_sftp_round_trip_with_the_host_key_checked(sftp_server: SftpServer) -> None:
    transport = SftpTransport(sftp_settings(sftp_server))
    with IntegratorAdapter(transport) as adapter:
        sent = adapter.send_remessa("1020304050", date(2025, 3, 10), [receipt("V1")], SP)
    root = sftp_server.root_folder
    assert sorted(os.listdir(root / "remessas")) == [sent.name]  # the temporary name is gone
    assert (root / "remessas" / sent.name).read_text(encoding="utf-8").startswith("sale_id,")

    (root / "retornos" / "RETORNO_1.csv").write_bytes(b"record_id\n")
    (root / "retornos" / ".RETORNO_2.csv.part").write_bytes(b"partial")
    with IntegratorAdapter(SftpTransport(sftp_settings(sftp_server))) as adapter:
        assert adapter.pending_retornos() == ["RETORNO_1.csv"]
        assert adapter.fetch_retorno("RETORNO_1.csv").csv == b"record_id\n"
        assert adapter.archive("RETORNO_1.csv").endswith("retornos/archive/RETORNO_1.csv")
        assert adapter.pending_retornos() == []
    assert (root / "retornos" / "archive" / "RETORNO_1.csv").exists()


def test_sftp_accepts_the_host_key_given_as_a_public_key_line(sftp_server: SftpServer) -> None:
    settings = sftp_settings(sftp_server, known_hosts_file="", host_key=sftp_server.host_public_key)
    transport = SftpTransport(settings)
    try:
        assert transport.incoming() == []
    finally:
        transport.close()


def test_sftp_refuses_a_server_with_another_host_key(sftp_server: SftpServer, tmp_path: Path) -> None:
    wrong = sftp_server.write_wrong_known_hosts(tmp_path / "known_hosts")
    with pytest.raises(HostKeyError, match="não é a configurada"):
        SftpTransport(sftp_settings(sftp_server, known_hosts_file=str(wrong)))
    other_key = wrong.read_text().split(maxsplit=1)[1].strip()
    with pytest.raises(HostKeyError):
        SftpTransport(sftp_settings(sftp_server, known_hosts_file="", host_key=other_key))
    assert not (sftp_server.root_folder / "remessas").exists()  # nothing was done on the server


def test_sftp_refuses_an_unknown_server(sftp_server: SftpServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match="desconhecido"):
        SftpTransport(sftp_settings(sftp_server, known_hosts_file=str(empty)))


def test_sftp_password_comes_from_the_environment(sftp_server: SftpServer) -> None:
    settings = SftpSettings.from_dict(
        {
            "host": sftp_server.host,
            "port": sftp_server.port,
            "username": sftp_server.username,
            "known_hosts_file": str(sftp_server.known_hosts_path),
            "password_env": "TEST_RECON_SFTP_PASSWORD",
        }
    )
    with pytest.raises(ExchangeError, match="TEST_RECON_SFTP_PASSWORD não definida"):
        SftpTransport(settings, environ={})


def test_sftp_server_down_is_a_clear_error(sftp_server: SftpServer) -> None:
    settings = sftp_settings(sftp_server)
    sftp_server.stop()
    with pytest.raises(ExchangeError, match=r"inacessível|falha na conexão"):
        SftpTransport(settings)


def test_endpoint_key_names_the_exchange_without_connecting(tmp_path: Path) -> None:
    assert exchange.endpoint_key("folder", {}, tmp_path) == FolderTransport(tmp_path).endpoint
    key = exchange.endpoint_key(
        "sftp", {"host": "h", "username": "u", "host_key": "ssh-ed25519 AAAA", "key_file": "/k"}, tmp_path
    )
    assert key == "sftp:u@h:22/inbox"
