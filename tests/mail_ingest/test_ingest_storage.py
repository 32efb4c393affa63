"""Storage first, exactly once: content-addressed raw mail, one row per Message-ID, failures that
leave the message re-processable, re-runs that change nothing."""

from __future__ import annotations

import hashlib

import pytest
from flask import Flask
from sqlalchemy import select

from mail_ingest import process
from mail_ingest.inbound_models import InboundKind, InboundMessage, InboundRaw, InboundStatus
from mail_ingest.pipeline import MAX_ATTEMPTS, Tally, reprocess_pending
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
    tickets,
)
from tests.onboarding.helpers import snapshot
from tests.support.dovecot import DovecotServer


def test_raw_mail_is_stored_by_sha256_and_once_per_message_id(
    app: Flask, imap_mailbox: DovecotServer
) -> None:
    configure(app, imap_mailbox)
    same_id = new_message_id("same")
    first = mail(subject="primeira", message_id=same_id)
    resent = mail(subject="primeira (reenviada por outro caminho)", message_id=same_id)
    no_id = mail(subject="sem Message-ID", message_id="")
    for raw in (first, first, resent, no_id):
        imap_mailbox.append(raw)

    tally = poll(app)

    assert tally["stored"] == 2 and tally["duplicates"] == 2
    with fresh_session(app) as session:
        rows = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        raws = {r.sha256: bytes(r.data) for r in session.scalars(select(InboundRaw))}
    assert len(rows) == 2 and rows[0].message_id == same_id
    for row in rows:
        assert hashlib.sha256(raws[row.sha256]).hexdigest() == row.sha256
    derived = rows[1]
    assert derived.message_id_derived and derived.message_id == f"<{derived.sha256}@sha256.invalid>"
    assert b"Subject: primeira\r\n" in raws[rows[0].sha256]  # the first copy is the one kept


def test_a_failure_leaves_the_message_stored_and_the_retry_does_it_once(
    app: Flask, imap_mailbox: DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(app, imap_mailbox)
    imap_mailbox.append(mail(subject="antes"))
    imap_mailbox.append(sample("01"))
    imap_mailbox.append(mail(subject="depois"))
    real_decide = process.decide

    def broken(db: object, message: InboundMessage, *args: object) -> None:
        real_decide(db, message, *args)  # type: ignore[arg-type]
        if message.kind == "onboarding":  # the ticket is opened, then the database fails
            raise RuntimeError("database hiccup")

    monkeypatch.setattr(process, "decide", broken)
    tally = poll(app)
    assert tally["failed"] == 1 and tally["triage"] == 2  # the batch went again one by one
    failed = next(m for m in messages(app) if m.status == InboundStatus.STORED)
    assert failed.attempts == 1 and "database hiccup" in failed.last_error
    assert row_counts(app) == (3, 3, 0)  # the half-done ticket was rolled back

    monkeypatch.setattr(process, "decide", real_decide)
    tally = poll(app)

    assert tally["reprocessed"] == 1 and tally["ticket"] == 1 and tally["fetched"] == 0
    assert row_counts(app) == (3, 3, 1)
    with fresh_session(app) as session:
        before = snapshot(session)
    poll(app)
    with fresh_session(app) as session:
        after = snapshot(session)
    assert after == before


def test_a_message_that_keeps_failing_ends_in_quarantine(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from mail_ingest.pipeline import Incoming, ingest

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("bug in a rule")

    monkeypatch.setattr(process, "decide", broken)
    with app.app_context(), fresh_session(app) as session:
        settings = IngestSettings.from_config(app.config)
        tally = Tally()
        ingest(session, Incoming(raw=sample("01"), source="test"), settings, tally)
        for _ in range(MAX_ATTEMPTS):
            reprocess_pending(session, settings, tally)

    [message] = messages(app)
    assert message.status == InboundStatus.QUARANTINED and message.kind == InboundKind.FAILED
    assert "bug in a rule" in message.reason and message.attempts == MAX_ATTEMPTS
    assert tickets(app) == []
