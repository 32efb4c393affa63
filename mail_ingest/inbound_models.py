"""Inbound mail: raw bytes by sha256, one row per message and mailbox, IMAP cursors."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from onboarding.db import Base, utcnow
from onboarding.models import Ticket, User


class InboundStatus(StrEnum):
    """stored -> processed | quarantined. `stored` rows are (re)processed by the next pass."""

    STORED = "stored"
    PROCESSED = "processed"
    QUARANTINED = "quarantined"


class InboundOutcome(StrEnum):
    """What processing did with a message (status `processed`)."""

    TICKET = "ticket"  # opened a ticket
    REPLY = "reply"  # joined a ticket through its thread or the number in the subject
    JOINED = "joined"  # an onboarding request for a customer whose ticket is already open
    AUTO_REPLY = "auto_reply"  # an automatic answer, joined to its ticket
    BOUNCE = "bounce"  # a delivery report, joined to its ticket
    TRIAGE = "triage"  # waits for an agent
    DISMISSED = "dismissed"  # an agent dismissed it from triage


class InboundKind(StrEnum):
    """What the message is, whatever became of it (the timeline shows it)."""

    ONBOARDING = "onboarding"
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    OTHER = "other"
    MALFORMED = "malformed"
    OVERSIZE = "oversize"
    FAILED = "failed"  # processing kept failing (a bug or a broken database row): see last_error


class InboundRaw(Base):
    """The bytes exactly as received, content-addressed. Written once, never changed."""

    __tablename__ = "inbound_raw"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int]
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboundMessage(Base):
    __tablename__ = "inbound_message"
    __table_args__ = (
        UniqueConstraint("mailbox", "message_id"),
        Index("ix_inbound_message_mailbox_sha256", "mailbox", "sha256"),
        Index("ix_inbound_message_status_outcome", "status", "outcome"),
        Index("ix_inbound_message_ticket_id_received_at", "ticket_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(1000))
    # True when the mail had no usable Message-ID and this one was derived from the raw hash.
    message_id_derived: Mapped[bool] = mapped_column(default=False)
    sha256: Mapped[str] = mapped_column(ForeignKey("inbound_raw.sha256"))
    size: Mapped[int]
    # Oversize mail is kept with its header section only (never downloaded whole).
    headers_only: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(20))
    source_ref: Mapped[str] = mapped_column(String(1000), default="")

    status: Mapped[str] = mapped_column(String(20), default=InboundStatus.STORED)
    outcome: Mapped[str | None] = mapped_column(String(20))
    kind: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(1000), default="")
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))

    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(300), default="")
    subject: Mapped[str] = mapped_column(String(1000), default="")
    in_reply_to: Mapped[str | None] = mapped_column(String(1000))
    sent_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    stored_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")

    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    resolved_at: Mapped[datetime | None]

    raw: Mapped[InboundRaw] = relationship()
    ticket: Mapped[Ticket | None] = relationship()
    resolved_by: Mapped[User | None] = relationship()


class ImapCursor(Base):
    """How far a folder has been read: every UID up to `last_uid` under `uidvalidity` is stored."""

    __tablename__ = "imap_cursor"
    __table_args__ = (UniqueConstraint("account", "folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(400))
    folder: Mapped[str] = mapped_column(String(300))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ImapPendingAction(Base):
    """A handled message still to be flagged \\Seen or moved on the server.

    Written in the transaction that stores the message, deleted once the server did it, so a
    crash between the commit and the IMAP command is finished by the next poll.
    """

    __tablename__ = "imap_pending_action"
    __table_args__ = (UniqueConstraint("account", "folder", "uidvalidity", "uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(400))
    folder: Mapped[str] = mapped_column(String(300))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
