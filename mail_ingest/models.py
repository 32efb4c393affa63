"""Every table of the mail package, for the app and for Alembic."""

from __future__ import annotations

from mail_ingest.inbound_models import (
    ImapCursor,
    ImapPendingAction,
    InboundKind,
    InboundMessage,
    InboundOutcome,
    InboundRaw,
    InboundStatus,
)
from mail_ingest.outbound_models import OutboundMail, OutboundRecipient, OutboundStatus

__all__ = [
    "ImapCursor",
    "ImapPendingAction",
    "InboundKind",
    "InboundMessage",
    "InboundOutcome",
    "InboundRaw",
    "InboundStatus",
    "OutboundMail",
    "OutboundRecipient",
    "OutboundStatus",
]
