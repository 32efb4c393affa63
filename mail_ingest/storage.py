"""Raw mail stored first: content-addressed bytes plus one message row per mailbox and Message-ID.

Nothing here parses bodies. The Message-ID comes from a header-only read of the raw bytes, so a
message whose body is unreadable is still stored (and then quarantined by processing).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.parser import BytesHeaderParser

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mail_ingest.inbound_models import InboundMessage, InboundRaw, InboundStatus
from mail_ingest.parse import derived_message_id, normalize_message_id
from onboarding.db import utcnow

# Longer ids (in UTF-8 bytes) are replaced by the derived one: they must fit a btree index.
MAX_MESSAGE_ID_BYTES = 900
_HEADER_PARSER = BytesHeaderParser(policy=policy.compat32)


@dataclass(frozen=True)
class Identity:
    """Who a raw message is, before it is parsed: its hash and its (possibly derived) Message-ID."""

    sha256: str
    message_id: str
    derived: bool
    size: int


def identify(raw: bytes) -> Identity:
    sha = hashlib.sha256(raw).hexdigest()
    message_id = header_message_id(raw)
    derived = message_id is None or len(message_id.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_ID_BYTES
    if derived:
        message_id = derived_message_id(raw)
    assert message_id is not None
    return Identity(sha256=sha, message_id=message_id, derived=derived, size=len(raw))


def header_message_id(raw: bytes) -> str | None:
    """The normalized Message-ID of the header section, or None when there is none usable."""
    try:
        headers = _HEADER_PARSER.parsebytes(raw)
        values = headers.get_all("message-id") or []
    except Exception:  # hostile header sections; the message gets a derived id instead
        return None
    for value in values:
        found = normalize_message_id(str(value))
        if found:
            return found
    return None


def find_existing(db: Session, mailbox: str, identity: Identity) -> InboundMessage | None:
    """The message already stored in `mailbox` with this Message-ID or these exact bytes."""
    return db.scalars(
        select(InboundMessage)
        .where(
            InboundMessage.mailbox == mailbox,
            or_(InboundMessage.message_id == identity.message_id, InboundMessage.sha256 == identity.sha256),
        )
        .order_by(InboundMessage.id)
        .limit(1)
    ).first()


def new_message(
    mailbox: str,
    identity: Identity,
    *,
    source: str,
    source_ref: str = "",
    received_at: datetime | None = None,
    headers_only: bool = False,
    size: int | None = None,
) -> InboundMessage:
    """The message row (status `stored`), not yet added to a session: the caller adds it once
    it is decided (so it is inserted once, never inserted then updated)."""
    message = InboundMessage(
        mailbox=mailbox,
        message_id=identity.message_id,
        message_id_derived=identity.derived,
        sha256=identity.sha256,
        size=size if size is not None else identity.size,
        headers_only=headers_only,
        source=source,
        source_ref=source_ref[:1000],
        status=InboundStatus.STORED,
        received_at=received_at or utcnow(),
    )
    return message


def raw_bytes(db: Session, message: InboundMessage) -> bytes:
    data = db.scalar(select(InboundRaw.data).where(InboundRaw.sha256 == message.sha256))
    if data is None:
        raise LookupError(f"raw bytes of message {message.id} are missing")
    return bytes(data)
