"""Reconciliation tables: imported receipts and retorno rows, import batches, corrections, runs, results.

Money is integer cents, datetimes are timezone-aware (UTC in the database), business dates are
`date` columns already converted to the business time zone. Rows are keyed by the integrators'
own ids (`sale_id`, `record_id`) so that importing a file again adds nothing.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from onboarding.db import Base, utcnow


class ImportBatch(Base):
    """One imported file (or one API batch): what was read, kept, ignored and refused."""

    __tablename__ = "recon_import_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # "sales" or "retorno"
    source: Mapped[str] = mapped_column(String(20), default="cli")  # "cli", "api", "exchange"
    file_name: Mapped[str] = mapped_column(String(300), default="")
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    rows_read: Mapped[int] = mapped_column(default=0)
    inserted: Mapped[int] = mapped_column(default=0)
    ignored: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class ImportRowError(Base):
    """A refused line of an import, with its line number (or item index) and the reason."""

    __tablename__ = "recon_import_error"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("recon_import_batch.id"), index=True)
    line_no: Mapped[int]
    reason: Mapped[str] = mapped_column(Text)


class StoredReceipt(Base):
    """An ERP card receipt (SPEC section 6), as last corrected."""

    __tablename__ = "recon_receipt"
    __table_args__ = (Index("ix_recon_receipt_establishment_date", "establishment_code", "sale_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sale_id: Mapped[str] = mapped_column(String(100), unique=True)
    establishment_code: Mapped[str] = mapped_column(String(40))
    sale_datetime: Mapped[datetime]
    sale_date: Mapped[date]  # business-time-zone date of sale_datetime
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    payment_type: Mapped[str] = mapped_column(String(20))
    brand: Mapped[str] = mapped_column(String(40))
    acquirer: Mapped[str] = mapped_column(String(40))
    installments: Mapped[int]
    authorization_code: Mapped[str | None] = mapped_column(String(40))
    nsu: Mapped[str | None] = mapped_column(String(40))
    origin: Mapped[str] = mapped_column(String(20))
    tid: Mapped[str | None] = mapped_column(String(60))
    txid: Mapped[str | None] = mapped_column(String(100))
    terminal: Mapped[str | None] = mapped_column(String(40))
    cnpj: Mapped[str | None] = mapped_column(String(20))
    corrected_on: Mapped[date | None]
    resend_pending: Mapped[bool] = mapped_column(default=False)
    batch_id: Mapped[int | None]  # recon_import_batch.id; no foreign key, bulk inserts skip the check
    line_no: Mapped[int | None]


class StoredStatementRow(Base):
    """One row of the integrator's retorno (SPEC section 7): an installment or an event."""

    __tablename__ = "recon_statement_row"
    __table_args__ = (Index("ix_recon_statement_row_establishment_date", "establishment_code", "sale_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[str] = mapped_column(String(100), unique=True)
    establishment_code: Mapped[str] = mapped_column(String(40))
    acquirer: Mapped[str] = mapped_column(String(40))
    brand: Mapped[str] = mapped_column(String(40))
    payment_type: Mapped[str] = mapped_column(String(20))
    sale_date: Mapped[date]
    sale_time: Mapped[time | None]
    authorization_code: Mapped[str | None] = mapped_column(String(40))
    nsu: Mapped[str | None] = mapped_column(String(40))
    tid: Mapped[str | None] = mapped_column(String(60))
    txid: Mapped[str | None] = mapped_column(String(100))
    installments: Mapped[int]
    installment_number: Mapped[int]
    sale_amount_cents: Mapped[int] = mapped_column(BigInteger)
    gross_amount_cents: Mapped[int] = mapped_column(BigInteger)
    fee_amount_cents: Mapped[int] = mapped_column(BigInteger)
    net_amount_cents: Mapped[int] = mapped_column(BigInteger)
    expected_payment_date: Mapped[date]
    event_type: Mapped[str] = mapped_column(String(30))
    batch_id: Mapped[int | None]  # recon_import_batch.id; no foreign key, bulk inserts skip the check
    line_no: Mapped[int | None]


class Correction(Base):
    """A correction of a receipt: who, when (business date and instant), the fields before and after."""

    __tablename__ = "recon_correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    receipt_id: Mapped[int] = mapped_column(ForeignKey("recon_receipt.id"), index=True)
    sale_id: Mapped[str] = mapped_column(String(100))
    corrected_on: Mapped[date]
    corrected_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    source: Mapped[str] = mapped_column(String(20), default="cli")
    before: Mapped[dict[str, Any]]
    after: Mapped[dict[str, Any]]


class Establishment(Base):
    """Per establishment code: a data version bumped by every import or correction touching it, and
    which (as-of, look-back, data version) its stored results were computed for."""

    __tablename__ = "recon_establishment"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    data_version: Mapped[int] = mapped_column(default=1)
    result_run_id: Mapped[int | None] = mapped_column(ForeignKey("recon_run.id"))
    result_as_of: Mapped[date | None]
    result_lookback_days: Mapped[int | None]
    result_data_version: Mapped[int | None]
    result_digest: Mapped[str | None] = mapped_column(String(64))


class Run(Base):
    """One `recon run` (or a run made for an export or the API): inputs, outcome and counts."""

    __tablename__ = "recon_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    as_of: Mapped[date]
    establishment_code: Mapped[str | None] = mapped_column(String(40))
    lookback_days: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)
    trigger: Mapped[str] = mapped_column(String(20), default="cli")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None]
    receipts: Mapped[int] = mapped_column(default=0)
    statement_rows: Mapped[int] = mapped_column(default=0)
    establishments_reconciled: Mapped[int] = mapped_column(default=0)
    establishments_unchanged: Mapped[int] = mapped_column(default=0)
    status_counts: Mapped[dict[str, Any] | None]
    divergence_counts: Mapped[dict[str, Any] | None]
    results_inserted: Mapped[int] = mapped_column(default=0)
    results_updated: Mapped[int] = mapped_column(default=0)
    results_unchanged: Mapped[int] = mapped_column(default=0)
    result_digest: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)


class Result(Base):
    """The current reconciliation result of one record (a row of the result CSV, SPEC section 8)."""

    __tablename__ = "recon_result"
    # Only the primary key: every other index would cost more on each run's bulk write than the
    # scans it saves on these reads.

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)  # "sale" or "statement"
    record_key: Mapped[str] = mapped_column(String(100), primary_key=True)  # sale_id or record_id
    establishment_code: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    divergences: Mapped[str] = mapped_column(String(200), default="")
    counterpart_ids: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[str] = mapped_column(String(100), default="")
    run_id: Mapped[int]  # recon_run.id; no foreign key, bulk inserts skip the check
