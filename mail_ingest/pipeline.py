"""One message in, exactly once: store, process, commit; a failure leaves it stored for a retry.

Every message has a transaction of its own, so one bad message never blocks the next. The raw
bytes and the message row are written first in that transaction; if processing then fails for
any reason other than a malformed message, the transaction is rolled back and the message is
committed alone, still `stored`, with the error, and the next pass retries it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mail_ingest.inbound_models import ImapPendingAction, InboundKind, InboundMessage, InboundStatus
from mail_ingest.process import IngestSettings, process_message, quarantine
from mail_ingest.storage import Identity, find_existing, identify, raw_bytes, store_message

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class ServerRef:
    """Where a message sits on the IMAP server, to flag or move it after the commit."""

    account: str
    folder: str
    uidvalidity: int
    uid: int


@dataclass(frozen=True)
class Incoming:
    raw: bytes
    source: str
    source_ref: str = ""
    received_at: datetime | None = None
    server: ServerRef | None = None
    headers_only: bool = False
    size: int | None = None  # the full size when only the headers are given


class Tally(Counter[str]):
    """Counts of one pass, printed as JSON by the CLI."""

    def count_outcome(self, message: InboundMessage) -> None:
        if message.status == InboundStatus.STORED:
            self["failed"] += 1
        elif message.status == InboundStatus.QUARANTINED:
            self["quarantined"] += 1
        else:
            self[str(message.outcome)] += 1


def ingest(db: Session, item: Incoming, settings: IngestSettings, tally: Tally) -> InboundMessage | None:
    """Store and process one message in its own transaction (committed here)."""
    identity = identify(item.raw)
    try:
        existing = find_existing(db, settings.mailbox, identity)
        if existing is not None:
            _remember_server(db, item.server)
            db.commit()
            tally["duplicates"] += 1
            return existing
        message = _store(db, item, identity, settings)
        process_message(db, message, item.raw, settings)
        _remember_server(db, item.server)
        db.commit()
    except IntegrityError:
        # Someone stored the same message meanwhile (another poller): it is a duplicate now.
        db.rollback()
        existing = find_existing(db, settings.mailbox, identity)
        if existing is None:
            raise
        _remember_server(db, item.server)
        db.commit()
        tally["duplicates"] += 1
        return existing
    except Exception as error:
        db.rollback()
        log.exception("processing %s failed; stored for a retry", identity.message_id)
        message = _store(db, item, identity, settings)
        message.attempts = 1
        message.last_error = _describe(error)
        _remember_server(db, item.server)
        db.commit()
    tally["stored"] += 1
    tally.count_outcome(message)
    return message


def _store(db: Session, item: Incoming, identity: Identity, settings: IngestSettings) -> InboundMessage:
    return store_message(
        db,
        settings.mailbox,
        item.raw,
        identity,
        source=item.source,
        source_ref=item.source_ref,
        received_at=item.received_at,
        headers_only=item.headers_only,
        size=item.size,
    )


def _remember_server(db: Session, server: ServerRef | None) -> None:
    if server is None:
        return
    exists = db.scalar(
        select(ImapPendingAction.id).where(
            ImapPendingAction.account == server.account,
            ImapPendingAction.folder == server.folder,
            ImapPendingAction.uidvalidity == server.uidvalidity,
            ImapPendingAction.uid == server.uid,
        )
    )
    if exists is None:
        db.add(
            ImapPendingAction(
                account=server.account, folder=server.folder, uidvalidity=server.uidvalidity, uid=server.uid
            )
        )


def ingest_many(db: Session, items: Iterable[Incoming], settings: IngestSettings, tally: Tally) -> None:
    for item in items:
        ingest(db, item, settings, tally)
        db.expunge_all()


def reprocess_pending(db: Session, settings: IngestSettings, tally: Tally, limit: int = 500) -> None:
    """Retry messages left `stored` by a failed processing; quarantine them after MAX_ATTEMPTS."""
    ids = db.scalars(
        select(InboundMessage.id)
        .where(InboundMessage.status == InboundStatus.STORED, InboundMessage.mailbox == settings.mailbox)
        .order_by(InboundMessage.id)
        .limit(limit)
    ).all()
    db.rollback()
    for message_id in ids:
        reprocess(db, message_id, settings, tally)
        db.expunge_all()


def reprocess(db: Session, message_id: int, settings: IngestSettings, tally: Tally) -> None:
    message = db.get(InboundMessage, message_id)
    if message is None or message.status != InboundStatus.STORED:
        db.rollback()
        return
    try:
        process_message(db, message, raw_bytes(db, message), settings)
        db.commit()
    except Exception as error:
        db.rollback()
        log.exception("reprocessing message %s failed", message_id)
        message = db.get(InboundMessage, message_id)
        assert message is not None
        message.attempts += 1
        message.last_error = _describe(error)
        if message.attempts >= MAX_ATTEMPTS:
            quarantine(
                message,
                InboundKind.FAILED,
                f"Falhou ao processar {message.attempts} vezes: {message.last_error}",
            )
        db.commit()
    tally["reprocessed"] += 1
    tally.count_outcome(message)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]
