"""The life of an integration: its configuration, the files exchanged, each sync pass, the triage.

- `Integration`: one per ticket, set by the developer when enabling (establishment codes, transport
  and its non-secret settings; passwords and key passphrases are read from the environment by the
  names stored here) and the sync state the screens show (last remessa, retorno, run, failure).
- `ExchangeFile`: every remessa sent and every retorno file read, so each retorno is processed once.
- `SyncPass`: one pass of the cycle for one integration (who triggered it, what it did, how it ended).
- `DivergenceTriage`: an open divergence found by a run and who must act on it (customer or
  integrator); the rows found by the validation run gate step 3.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from onboarding.db import Base, utcnow
from onboarding.models import Ticket, User


class TransportKind(StrEnum):
    FOLDER = "folder"
    SFTP = "sftp"


class IntegrationStatus(StrEnum):
    CONFIGURED = "configured"  # set up by the developer, task not returned yet
    ENABLED = "enabled"  # in the daily cycle
    DISABLED = "disabled"


class Responsible(StrEnum):
    CUSTOMER = "customer"
    INTEGRATOR = "integrator"


class SyncStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    PARTIAL = "partial"  # some establishment was being reconciled by another run: left for the next pass
    FAILED = "failed"


class Integration(Base):
    __tablename__ = "recon_integration"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), unique=True)
    dev_task_id: Mapped[int | None] = mapped_column(ForeignKey("dev_task.id"))
    status: Mapped[str] = mapped_column(String(20), default=IntegrationStatus.CONFIGURED, index=True)
    establishment_codes: Mapped[list[str]] = mapped_column(default=list)
    transport: Mapped[str] = mapped_column(String(20), default=TransportKind.FOLDER)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    remessa_time: Mapped[str] = mapped_column(String(5), default="06:00")  # HH:MM, business time zone
    configured_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    configured_at: Mapped[datetime | None]
    enabled_at: Mapped[datetime | None]
    # The run made when the task was returned, and the first run that had the integrator's retorno
    # to reconcile against: its divergences are the ones step 3 requires triaged.
    first_run_id: Mapped[int | None]
    first_run_at: Mapped[datetime | None]
    validation_run_id: Mapped[int | None]
    start_date: Mapped[date | None]  # first day of the first remessa's window: older records are history
    validation_run_at: Mapped[datetime | None]
    last_sync_at: Mapped[datetime | None]
    last_sync_status: Mapped[str | None] = mapped_column(String(20))
    last_remessa_at: Mapped[datetime | None]
    last_remessa_as_of: Mapped[date | None]
    last_retorno_at: Mapped[datetime | None]
    last_run_id: Mapped[int | None]
    last_run_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    next_retry_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    ticket: Mapped[Ticket] = relationship()
    configured_by: Mapped[User | None] = relationship()


class ExchangeFile(Base):
    """A remessa written to the integrator or a retorno read from it."""

    __tablename__ = "recon_exchange_file"
    __table_args__ = (
        Index("ix_recon_exchange_file_lookup", "endpoint", "direction", "name"),
        Index("ix_recon_exchange_file_remessa", "integration_id", "establishment_code", "as_of"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(300))  # which exchange (folder path, sftp host and dir)
    direction: Mapped[str] = mapped_column(String(10))  # "remessa" or "retorno"
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(default=0)
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("recon_integration.id"))
    establishment_code: Mapped[str | None] = mapped_column(String(40))
    as_of: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(20))  # sent | processed | rejected
    records: Mapped[int] = mapped_column(default=0)
    inserted: Mapped[int] = mapped_column(default=0)
    ignored: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    batch_id: Mapped[int | None]
    establishment_codes: Mapped[list[str]] = mapped_column(default=list)  # retorno: codes it touched
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncPass(Base):
    __tablename__ = "recon_sync_pass"

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("recon_integration.id"), index=True)
    trigger: Mapped[str] = mapped_column(String(20))  # first_run | schedule | cli | retry | manual
    as_of: Mapped[date]
    status: Mapped[str] = mapped_column(String(20), default=SyncStatus.RUNNING)
    attempt: Mapped[int] = mapped_column(default=1)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    remessas: Mapped[int] = mapped_column(default=0)
    remessa_receipts: Mapped[int] = mapped_column(default=0)
    retornos: Mapped[int] = mapped_column(default=0)
    run_ids: Mapped[list[str]] = mapped_column(default=list)
    skipped: Mapped[list[str]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)


class DivergenceTriage(Base):
    __tablename__ = "recon_divergence_triage"
    __table_args__ = (UniqueConstraint("integration_id", "kind", "record_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("recon_integration.id"), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # "sale" or "statement"
    record_key: Mapped[str] = mapped_column(String(100))  # sale_id, or the first record_id of the sale
    related_keys: Mapped[list[str]] = mapped_column(default=list)  # the other retorno rows of that sale
    establishment_code: Mapped[str] = mapped_column(String(40))
    sale_date: Mapped[date | None]
    amount_cents: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20))  # the result status when last seen
    divergences: Mapped[str] = mapped_column(String(200), default="")
    from_validation: Mapped[bool] = mapped_column(default=False)
    responsible: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    triaged_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    triaged_at: Mapped[datetime | None]
    first_seen_run_id: Mapped[int | None]
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]

    triaged_by: Mapped[User | None] = relationship()
