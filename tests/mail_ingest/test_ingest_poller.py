"""The IMAP poller against a private Dovecot: security modes, cursor, size limit, flags, moves,
UIDVALIDITY changes, a server that dies mid-poll, timeouts."""

from __future__ import annotations

import socket
import threading

import pytest
from flask import Flask
from sqlalchemy import select

from mail_ingest.imap import ImapSettings, MailboxUnavailable, Poller
from mail_ingest.inbound_models import ImapCursor, ImapPendingAction, InboundKind, InboundStatus
from mail_ingest.process import IngestSettings
from tests.mail_ingest.ingest_helpers import (
    configure,
    fresh_session,
    mail,
    messages,
    new_message_id,
    poll,
    row_counts,
    sample,
)
from tests.support.dovecot import DovecotServer

# The database plays no part here: run on SQLite only (the app fixture runs both otherwise).
DB_AGNOSTIC = pytest.mark.parametrize("app", ["sqlite"], indirect=True)


@DB_AGNOSTIC
@pytest.mark.parametrize("security", ["ssl", "starttls", "none"])
def test_poll_reads_the_mailbox_over_ssl_starttls_and_plain(
    app: Flask, imap_mailbox: DovecotServer, security: str
) -> None:
    configure(app, imap_mailbox, security)
    imap_mailbox.append(sample("01"))
    imap_mailbox.append(mail(subject="Outra"))

    tally = poll(app)

    assert tally["fetched"] == 2
    assert [m.status for m in messages(app)] == [InboundStatus.PROCESSED, InboundStatus.PROCESSED]


@DB_AGNOSTIC
def test_tls_certificate_is_verified(app: Flask, imap_mailbox: DovecotServer) -> None:
    configure(app, imap_mailbox, "ssl")
    app.config["IMAP_SSL_CONTEXT"] = None  # the system trust store does not know the test CA
    imap_mailbox.append(mail())

    with pytest.raises(MailboxUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        poll(app)
    assert row_counts(app) == (0, 0, 0)


@DB_AGNOSTIC
@pytest.mark.parametrize(
    ("greets", "connect_timeout", "read_timeout"),
    [
        (False, 0.5, 30),  # never greets: the connect timeout bounds the wait
        (True, 30, 0.5),  # greets and answers CAPABILITY, then silence at LOGIN: the read timeout
    ],
    ids=["connect", "read"],
)
def test_timeouts_on_a_server_that_stops_answering(
    app: Flask, greets: bool, connect_timeout: float, read_timeout: float
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        if greets:
            conn.sendall(b"* OK ready\r\n")
            tag = conn.makefile("rb").readline().split(b" ", 1)[0]  # the client asks CAPABILITY
            conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
        # and then silence

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    app.config.update(
        IMAP_HOST="127.0.0.1",
        IMAP_PORT=listener.getsockname()[1],
        IMAP_USER="x",
        IMAP_PASSWORD="y",
        IMAP_SECURITY="none",
        IMAP_CONNECT_TIMEOUT=connect_timeout,
        IMAP_READ_TIMEOUT=read_timeout,
    )
    try:
        with pytest.raises(MailboxUnavailable, match="indisponível"):
            poll(app)
    finally:
        server.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_cursor_per_folder_reads_only_new_uids(app: Flask, imap_mailbox: DovecotServer) -> None:
    configure(app, imap_mailbox)
    first = [imap_mailbox.append(mail(subject=f"m{i}")) for i in range(3)]
    assert poll(app)["fetched"] == 3
    later = imap_mailbox.append(mail(subject="m3"))

    tally = poll(app)

    assert tally["fetched"] == 1 and tally["duplicates"] == 0
    assert poll(app)["fetched"] == 0
    with fresh_session(app) as session:
        cursor = session.scalars(select(ImapCursor)).one()
        assert cursor.folder == "INBOX"
        assert cursor.uidvalidity == imap_mailbox.uidvalidity()
        assert cursor.last_uid == later > max(first)


def test_oversize_mail_is_quarantined_unread_with_its_headers(
    app: Flask, imap_mailbox: DovecotServer
) -> None:
    configure(app, imap_mailbox, MAIL_MAX_BYTES=5000)
    big_id = new_message_id("big")
    uid = imap_mailbox.append(mail(subject="Planilha enorme", body="x" * 20000, message_id=big_id))
    imap_mailbox.append(mail(subject="pequena"))

    tally = poll(app)

    assert tally["oversize"] == 1 and tally["fetched"] == 1
    big = next(m for m in messages(app) if m.message_id == big_id)
    assert big.status == InboundStatus.QUARANTINED and big.kind == InboundKind.OVERSIZE
    assert big.headers_only and big.size > 20000
    assert "MAIL_MAX_BYTES" in big.reason
    assert big.subject == "Planilha enorme"
    with fresh_session(app) as session:
        from mail_ingest.storage import raw_bytes

        stored = raw_bytes(session, session.merge(big))
    assert b"Subject: Planilha enorme" in stored and b"xxxxx" not in stored
    assert b"\\Seen" not in imap_mailbox.flags(uid)  # never downloaded, never marked read


def test_seen_is_set_only_after_the_commit_and_a_lost_flag_is_redone(
    app: Flask, imap_mailbox: DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(app, imap_mailbox)
    uid = imap_mailbox.append(sample("01"))
    # A crash right after the commit: the server is never told.
    monkeypatch.setattr(Poller, "_apply_pending", lambda *args: None)
    poll(app)
    assert b"\\Seen" not in imap_mailbox.flags(uid)
    with fresh_session(app) as session:
        assert [a.uid for a in session.scalars(select(ImapPendingAction))] == [uid]
    monkeypatch.undo()

    tally = poll(app)

    assert tally["fetched"] == 0
    assert b"\\Seen" in imap_mailbox.flags(uid)
    assert row_counts(app) == (1, 1, 1)
    with fresh_session(app) as session:
        assert session.scalars(select(ImapPendingAction)).all() == []


@DB_AGNOSTIC
def test_handled_mail_moves_to_the_processed_folder_and_nothing_is_deleted(
    app: Flask, imap_mailbox: DovecotServer
) -> None:
    configure(app, imap_mailbox, IMAP_PROCESSED_FOLDER="Processadas")
    raws = [sample("01"), mail(subject="dúvida")]
    for raw in raws:
        imap_mailbox.append(raw)

    assert poll(app)["moved"] == 2

    assert imap_mailbox.uids("INBOX") == []
    moved = imap_mailbox.fetch_all("Processadas")
    # Dovecot stores lines with CRLF; the content is the same.
    assert sorted(m.raw.replace(b"\r\n", b"\n") for m in moved) == sorted(raws)
    assert poll(app)["fetched"] == 0


def test_changed_uidvalidity_resyncs_without_duplicates(app: Flask, imap_mailbox: DovecotServer) -> None:
    configure(app, imap_mailbox)
    old = [sample("01"), sample("11"), mail(subject="sem id", message_id="")]
    for raw in old:
        imap_mailbox.append(raw)
    poll(app)
    before = row_counts(app)
    assert before == (3, 3, 1)

    new_validity = imap_mailbox.recreate_folder("INBOX")
    for raw in old:
        imap_mailbox.append(raw)
    imap_mailbox.append(mail(subject="nova depois da recriação"))
    tally = poll(app)

    assert tally["resynced"] == 1 and tally["duplicates"] == 3 and tally["stored"] == 1
    assert row_counts(app) == (4, 4, 1)
    with fresh_session(app) as session:
        cursor = session.scalars(select(ImapCursor)).one()
        assert cursor.uidvalidity == new_validity
    assert all(b"\\Seen" in m.flags for m in imap_mailbox.fetch_all())


def test_dovecot_stopped_mid_poll_then_the_next_poll_loses_nothing(
    app: Flask, imap_mailbox: DovecotServer
) -> None:
    configure(app, imap_mailbox, IMAP_BATCH_SIZE=5)
    raws = [mail(subject=f"lote {i}") for i in range(23)]
    for raw in raws:
        imap_mailbox.append(raw)

    batches: list[int] = []

    def heartbeat() -> None:  # called after each committed batch
        batches.append(1)
        if len(batches) == 2:
            imap_mailbox.stop()

    with pytest.raises(MailboxUnavailable), fresh_session(app) as session:
        imap = ImapSettings.from_config(app.config)
        Poller(session, imap, IngestSettings.from_config(app.config), heartbeat=heartbeat).run()
    stored_before_restart = row_counts(app)[0]
    assert 10 <= stored_before_restart < 23

    imap_mailbox.start()
    tally = poll(app)

    assert tally["stored"] == 23 - stored_before_restart and tally["duplicates"] == 0
    assert row_counts(app)[0] == 23
    assert sorted(m.subject for m in messages(app)) == sorted(f"lote {i}" for i in range(23))
    assert all(b"\\Seen" in m.flags for m in imap_mailbox.fetch_all())


@DB_AGNOSTIC
def test_two_polls_never_overlap(app: Flask, imap_mailbox: DovecotServer) -> None:
    configure(app, imap_mailbox)
    imap_mailbox.append(mail())
    from mail_ingest.jobs import PollLocked, poll_lock, poll_mailbox

    with app.app_context(), poll_lock():
        outcome: list[object] = []
        thread = threading.Thread(target=lambda: outcome.append(_try_poll(app, poll_mailbox, PollLocked)))
        thread.start()
        thread.join()
        assert outcome == ["locked"]
    assert poll(app)["fetched"] == 1


def _try_poll(app: Flask, func: object, locked: type[Exception]) -> object:
    with app.app_context():
        try:
            return func()  # type: ignore[operator]
        except locked:
            return "locked"
