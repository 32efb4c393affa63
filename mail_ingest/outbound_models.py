"""The outbox: every mail we send is a row first, written in the transaction that causes it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from onboarding.db import Base, utcnow


class OutboundStatus(StrEnum):
    """queued -> sending -> sent | failed; `uncertain` when the server may or may not have taken
    it (never resent without an agent's requeue); `suppressed` when a guard refused to send."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    SUPPRESSED = "suppressed"


class OutboundMail(Base):
    __tablename__ = "outbound_mail"
    __table_args__ = (Index("ix_outbound_mail_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=OutboundStatus.QUEUED)
    template: Mapped[str] = mapped_column(String(60), default="")
    automatic: Mapped[bool] = mapped_column(default=False)
    mail_from: Mapped[str] = mapped_column(String(320))
    reply_to: Mapped[str] = mapped_column(String(320), default="")
    to_addrs: Mapped[list[str]] = mapped_column(default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(String(500), default="")
    text_body: Mapped[str] = mapped_column(Text, default="")
    html_body: Mapped[str] = mapped_column(Text, default="")
    in_reply_to: Mapped[str | None] = mapped_column(String(300))
    references: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The claim of the worker sending it: set and committed before SMTP is touched.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None]
    # Committed just before the DATA command: a claim that went stale after this point may have
    # been delivered, so it becomes `uncertain`; before it, it surely was not, so it is requeued.
    data_started_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    suppressed_reason: Mapped[str] = mapped_column(String(300), default="")
    smtp_reply: Mapped[str] = mapped_column(String(500), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    recipients: Mapped[list[OutboundRecipient]] = relationship(
        back_populates="mail", cascade="all, delete-orphan", order_by="OutboundRecipient.id"
    )


class OutboundRecipient(Base):
    """One row per address of a mail, so the daily cap of automatic mail is an indexed count."""

    __tablename__ = "outbound_recipient"
    __table_args__ = (Index("ix_outbound_recipient_address_created_at", "address", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_id: Mapped[int] = mapped_column(ForeignKey("outbound_mail.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(3), default="to")
    automatic: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    mail: Mapped[OutboundMail] = relationship(back_populates="recipients")
