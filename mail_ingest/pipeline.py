"""Messages in, exactly once: store the raw bytes, process, commit; a failure leaves a message
stored for a retry.

A batch (one IMAP fetch, or a hundred imported files) is stored and processed in one
transaction, for speed. If anything in it fails other than a malformed message (which is
quarantined, not an error), the batch is rolled back and each message goes again in a
transaction of its own, so one bad message never blocks the next; a message whose processing
still fails is committed alone, `stored`, with the error, and the next pass retries it.
Duplicates (same Message-ID or same bytes in the mailbox) are counted, never stored twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mail_ingest.analysis import Analysis
from mail_ingest.analyzer import Pending
from mail_ingest.inbound_models import (
    ImapPendingAction,
    InboundKind,
    InboundMessage,
    InboundRaw,
    InboundStatus,
)
from mail_ingest.process import IngestSettings, analyze_raw, process_batch, process_message, quarantine
from mail_ingest.storage import Identity, find_existing, identify, new_message, raw_bytes

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


@dataclass
class _Known:
    """What the database already holds for the messages at hand (fetched in a few queries)."""

    message_ids: set[str]
    shas: set[str]
    raws: set[str]
    pending: set[tuple[str, str, int, int]]


def _known(db: Session, batch: Sequence[tuple[Incoming, Identity]], mailbox: str) -> _Known:
    ids = list({identity.message_id for _, identity in batch})
    shas = list({identity.sha256 for _, identity in batch})
    servers = [item.server for item, _ in batch if item.server is not None]
    known = _Known(
        message_ids=set(
            db.scalars(
                select(InboundMessage.message_id).where(
                    InboundMessage.mailbox == mailbox, InboundMessage.message_id.in_(ids)
                )
            )
        ),
        shas=set(
            db.scalars(
                select(InboundMessage.sha256).where(
                    InboundMessage.mailbox == mailbox, InboundMessage.sha256.in_(shas)
                )
            )
        ),
        raws=set(db.scalars(select(InboundRaw.sha256).where(InboundRaw.sha256.in_(shas)))),
        pending=set(),
    )
    if servers:
        first = servers[0]
        rows = db.execute(
            select(
                ImapPendingAction.account,
                ImapPendingAction.folder,
                ImapPendingAction.uidvalidity,
                ImapPendingAction.uid,
            ).where(
                ImapPendingAction.account == first.account,
                ImapPendingAction.folder == first.folder,
                ImapPendingAction.uid.in_([s.uid for s in servers]),
            )
        ).all()
        known.pending = {(a, f, int(v), int(u)) for a, f, v, u in rows}
    return known


def _run(
    db: Session,
    batch: Sequence[tuple[Incoming, Identity]],
    settings: IngestSettings,
    tally: Tally,
    analyses: Pending | None = None,
) -> list[InboundMessage]:
    """Store the new messages of `batch` and process them, inside the caller's transaction.

    `analyses`, when given, yields the analysis of every item of the batch, in order.
    """
    prepared = analyses() if analyses is not None else None
    known = _known(db, batch, settings.mailbox)
    entries: list[tuple[InboundMessage, Analysis]] = []
    for index, (item, identity) in enumerate(batch):
        _remember_server(db, item.server, known)
        if identity.message_id in known.message_ids or identity.sha256 in known.shas:
            tally["duplicates"] += 1
            continue
        message = _store(db, item, identity, settings, store_raw=identity.sha256 not in known.raws)
        known.message_ids.add(identity.message_id)
        known.shas.add(identity.sha256)
        known.raws.add(identity.sha256)
        analysis = prepared[index] if prepared is not None else analyze_raw(item.raw, settings)
        entries.append((message, analysis))
    process_batch(db, entries, settings)
    for message, _ in entries:
        tally["stored"] += 1
        tally.count_outcome(message)
    return [message for message, _ in entries]


def ingest_batch(
    db: Session,
    items: Sequence[Incoming],
    settings: IngestSettings,
    tally: Tally,
    analyses: Pending | None = None,
) -> None:
    """Many messages in one transaction, for speed; if anything fails, the batch is rolled back
    and every message goes again in a transaction of its own (`ingest`, analysed inline)."""
    if len(items) <= 1 and analyses is None:
        for item in items:
            ingest(db, item, settings, tally)
        return
    local = Tally()
    try:
        _run(db, [(item, identify(item.raw)) for item in items], settings, local, analyses)
        db.commit()
    except Exception:
        db.rollback()
        db.expunge_all()
        log.warning("a batch of %d messages failed; ingesting them one by one", len(items), exc_info=True)
        for item in items:
            ingest(db, item, settings, tally)
            db.expunge_all()
        return
    db.expunge_all()
    tally.update(local)


def ingest(db: Session, item: Incoming, settings: IngestSettings, tally: Tally) -> InboundMessage | None:
    """Store and process one message in its own transaction (committed here).

    A failure other than a malformed message rolls everything back and stores the message
    alone, still `stored`, for the next pass to retry. Returns None for a duplicate.
    """
    identity = identify(item.raw)
    local = Tally()
    try:
        stored = _run(db, [(item, identity)], settings, local)
        db.commit()
        tally.update(local)
        return stored[0] if stored else None
    except IntegrityError:
        # Someone stored the same message meanwhile (another poller): it is a duplicate now.
        db.rollback()
        if find_existing(db, settings.mailbox, identity) is None:
            raise
        _remember_server(db, item.server, None)
        db.commit()
        tally["duplicates"] += 1
        return None
    except Exception as error:
        db.rollback()
        log.exception("processing %s failed; stored for a retry", identity.message_id)
        known = _known(db, [(item, identity)], settings.mailbox)
        message = _store(db, item, identity, settings, store_raw=identity.sha256 not in known.raws)
        db.add(message)
        message.attempts = 1
        message.last_error = _describe(error)
        _remember_server(db, item.server, known)
        db.commit()
        tally["stored"] += 1
        tally.count_outcome(message)
        return message


def _store(
    db: Session, item: Incoming, identity: Identity, settings: IngestSettings, *, store_raw: bool
) -> InboundMessage:
    if store_raw:
        db.add(InboundRaw(sha256=identity.sha256, size=len(item.raw), data=item.raw))
    return new_message(
        settings.mailbox,
        identity,
        source=item.source,
        source_ref=item.source_ref,
        received_at=item.received_at,
        headers_only=item.headers_only,
        size=item.size,
    )


def _remember_server(db: Session, server: ServerRef | None, known: _Known | None) -> None:
    if server is None:
        return
    key = (server.account, server.folder, server.uidvalidity, server.uid)
    if known is not None:
        if key in known.pending:
            return
        known.pending.add(key)
    elif db.scalar(
        select(ImapPendingAction.id).where(
            ImapPendingAction.account == server.account,
            ImapPendingAction.folder == server.folder,
            ImapPendingAction.uidvalidity == server.uidvalidity,
            ImapPendingAction.uid == server.uid,
        )
    ):
        return
    db.add(
        ImapPendingAction(
            account=server.account, folder=server.folder, uidvalidity=server.uidvalidity, uid=server.uid
        )
    )


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
