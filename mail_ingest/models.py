"""Every table of the mail package, for the app and for Alembic."""

from __future__ import annotations

from mail_ingest.outbound_models import OutboundMail, OutboundRecipient, OutboundStatus

__all__ = ["OutboundMail", "OutboundRecipient", "OutboundStatus"]
