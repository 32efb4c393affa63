"""What the validation and correction screens show, read from the stored results (no matching here).

- `day_stats`: per establishment and day, how many receipts reconciled, diverged, are pending,
  and how many sales the acquirer reported that the ERP lacks; `chart_days` folds them per day.
- `receipts_page`: the receipts of an integration with their status, paged and filtered.
- `correction_state`: for a corrected receipt, when it goes out again and when it turns `manual`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onboarding.queries import Page
from reconciliation import records
from reconciliation.integration_models import DivergenceTriage, ExchangeFile, Integration
from reconciliation.models import Correction, Result, StoredReceipt, StoredStatementRow

STATUS_LABELS = {
    "matched": "Conciliada",
    "divergent": "Divergente",
    "pending": "Pendente",
    "not_found": "Sem correspondente",
    "duplicate": "Duplicada",
    "cancelled": "Cancelada",
    "chargeback": "Chargeback",
    "manual": "Manual",
    None: "Ainda não conciliada",
}
RECONCILED = frozenset({"matched", "cancelled", "chargeback"})
DIVERGENT = frozenset({"divergent", "not_found", "duplicate", "manual"})
MAX_CHART_DAYS = 31


def codes_of(integration: Integration) -> list[str]:
    return [c for c in (records.norm_code(x) for x in integration.establishment_codes) if c]


@dataclass
class DayStat:
    establishment_code: str
    day: date
    reconciled: int = 0
    divergent: int = 0
    pending: int = 0
    missing_in_erp: int = 0
    reconciled_cents: int = 0
    divergent_cents: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def receipts(self) -> int:
        return sum(self.statuses.values())

    @property
    def problems(self) -> int:
        return self.divergent + self.missing_in_erp


def day_range(integration: Integration, as_of: date | None) -> tuple[date, date] | None:
    if as_of is None:
        return None
    start = integration.start_date or as_of
    start = max(start, as_of - timedelta(days=MAX_CHART_DAYS - 1))
    return start, as_of


def day_stats(db: Session, codes: list[str], start: date, end: date) -> list[DayStat]:
    """Per (establishment, day) counts, days with nothing left out; ordered by establishment, day."""
    if not codes:
        return []
    stats: dict[tuple[str, date], DayStat] = {}

    def stat(code: str, day: date) -> DayStat:
        key = (code, day)
        if key not in stats:
            stats[key] = DayStat(code, day)
        return stats[key]

    receipt, result = StoredReceipt.__table__, Result.__table__
    query = (
        sa.select(
            receipt.c.establishment_code,
            receipt.c.sale_date,
            result.c.status,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(receipt.c.amount_cents), 0),
        )
        .select_from(
            receipt.outerjoin(
                result, sa.and_(result.c.kind == "sale", result.c.record_key == receipt.c.sale_id)
            )
        )
        .where(receipt.c.establishment_code.in_(codes), receipt.c.sale_date.between(start, end))
        .group_by(receipt.c.establishment_code, receipt.c.sale_date, result.c.status)
    )
    for code, day, status, count, cents in db.execute(query):
        s = stat(code, day)
        s.statuses[status or "unreconciled"] = s.statuses.get(status or "unreconciled", 0) + count
        if status in RECONCILED:
            s.reconciled += count
            s.reconciled_cents += int(cents)
        elif status in DIVERGENT:
            s.divergent += count
            s.divergent_cents += int(cents)
        else:
            s.pending += count
    row = StoredStatementRow.__table__
    missing = (
        sa.select(row.c.establishment_code, row.c.sale_date, sa.func.count())
        .join(result, sa.and_(result.c.kind == "statement", result.c.record_key == row.c.record_id))
        .where(row.c.establishment_code.in_(codes), row.c.sale_date.between(start, end))
        .where(result.c.status == "not_found", row.c.event_type == "sale", row.c.installment_number == 1)
        .group_by(row.c.establishment_code, row.c.sale_date)
    )
    for code, day, count in db.execute(missing):
        stat(code, day).missing_in_erp += count
    return sorted(stats.values(), key=lambda s: (s.establishment_code, s.day))


@dataclass(frozen=True)
class ChartDay:
    day: date
    reconciled: int
    divergent: int
    pending: int

    @property
    def total(self) -> int:
        return self.reconciled + self.divergent + self.pending


def chart_days(stats: list[DayStat], start: date, end: date) -> list[ChartDay]:
    """One entry per calendar day of [start, end], all establishments together."""
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for s in stats:
        acc = per_day[s.day]
        acc[0] += s.reconciled
        acc[1] += s.problems
        acc[2] += s.pending
    days = []
    day = start
    while day <= end:
        r, d, p = per_day.get(day, (0, 0, 0))
        days.append(ChartDay(day, r, d, p))
        day += timedelta(days=1)
    return days


# --- the correction screen -------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptRow:
    receipt: StoredReceipt
    status: str | None
    divergences: list[str]

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status or "")


def receipts_page(
    db: Session,
    codes: list[str],
    *,
    page: int,
    per_page: int,
    status: str | None = None,
    establishment: str | None = None,
    q: str | None = None,
    start: date | None = None,
) -> Page[ReceiptRow]:
    receipt, result = StoredReceipt.__table__, Result.__table__
    joined = receipt.outerjoin(
        result, sa.and_(result.c.kind == "sale", result.c.record_key == receipt.c.sale_id)
    )
    conditions: list[Any] = [receipt.c.establishment_code.in_(codes or ["\x00"])]
    if start is not None:
        conditions.append(receipt.c.sale_date >= start)
    if establishment:
        conditions.append(receipt.c.establishment_code == records.norm_code(establishment))
    if status == "queued":
        conditions.append(receipt.c.resend_pending.is_(True))
    elif status == "corrected":
        conditions.append(receipt.c.corrected_on.is_not(None))
    elif status == "open":
        conditions.append(result.c.status.in_(sorted(DIVERGENT)))
    elif status:
        conditions.append(result.c.status == status)
    if q and q.strip():
        text = q.strip()
        upper = text.upper()
        conditions.append(
            sa.or_(
                receipt.c.sale_id == text,
                receipt.c.nsu == upper,
                receipt.c.authorization_code == upper,
            )
        )
    total = db.scalar(sa.select(sa.func.count()).select_from(joined).where(*conditions)) or 0
    query = (
        sa.select(StoredReceipt, result.c.status, result.c.divergences)
        .select_from(joined)
        .where(*conditions)
        .order_by(receipt.c.sale_datetime.desc(), receipt.c.sale_id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    items = [
        ReceiptRow(rc, st, [d for d in (divs or "").split("|") if d]) for rc, st, divs in db.execute(query)
    ]
    return Page(items, page, per_page, int(total))


@dataclass(frozen=True)
class CorrectionState:
    corrected_on: date
    queued: bool  # waiting for the next remessa
    next_remessa_at: datetime | None
    resent_on: date | None  # the remessa that carried it again
    manual_on: date  # if still without counterpart on this day, it turns `manual`
    is_manual: bool


def correction_state(
    db: Session,
    integration: Integration | None,
    receipt: StoredReceipt,
    status: str | None,
    lookback_days: int,
    next_remessa: datetime | None,
) -> CorrectionState | None:
    if receipt.corrected_on is None:
        return None
    resent_on = None
    if not receipt.resend_pending and integration is not None:
        resent_on = db.scalar(
            sa.select(sa.func.min(ExchangeFile.as_of)).where(
                ExchangeFile.integration_id == integration.id,
                ExchangeFile.direction == "remessa",
                ExchangeFile.establishment_code == receipt.establishment_code,
                ExchangeFile.as_of >= receipt.corrected_on,
            )
        )
    return CorrectionState(
        corrected_on=receipt.corrected_on,
        queued=receipt.resend_pending,
        next_remessa_at=next_remessa if receipt.resend_pending else None,
        resent_on=resent_on,
        manual_on=receipt.corrected_on + timedelta(days=lookback_days + 1),
        is_manual=status == "manual",
    )


def counterpart_rows(db: Session, sale_id: str) -> list[StoredStatementRow]:
    ids = db.scalar(
        sa.select(Result.counterpart_ids).where(Result.kind == "sale", Result.record_key == sale_id)
    )
    keys = [k for k in (ids or "").split("|") if k]
    if not keys:
        return []
    rows = db.scalars(sa.select(StoredStatementRow).where(StoredStatementRow.record_id.in_(keys)))
    return sorted(rows, key=lambda r: (r.event_type != "sale", r.installment_number, r.record_id))


def corrections_of(db: Session, sale_id: str) -> list[Correction]:
    return list(
        db.scalars(sa.select(Correction).where(Correction.sale_id == sale_id).order_by(Correction.id.desc()))
    )


def result_of(db: Session, sale_id: str) -> tuple[str | None, list[str]]:
    row = db.execute(
        sa.select(Result.status, Result.divergences).where(
            Result.kind == "sale", Result.record_key == sale_id
        )
    ).first()
    if row is None:
        return None, []
    return row[0], [d for d in (row[1] or "").split("|") if d]


def triage_counts(db: Session, integration_id: int) -> dict[str, int]:
    rows = db.execute(
        sa.select(
            DivergenceTriage.from_validation, DivergenceTriage.responsible, DivergenceTriage.resolved_at
        ).where(DivergenceTriage.integration_id == integration_id)
    ).all()
    validation = [r for r in rows if r[0]]
    return {
        "validation_total": len(validation),
        "validation_triaged": sum(1 for r in validation if r[1] is not None or r[2] is not None),
        "open": sum(1 for r in rows if r[2] is None),
        "open_untriaged": sum(1 for r in rows if r[2] is None and r[1] is None),
    }


def triage_page(
    db: Session,
    integration_id: int,
    *,
    kind: str | None,
    scope: str,
    page: int,
    per_page: int,
) -> Page[DivergenceTriage]:
    t = DivergenceTriage
    conditions: list[Any] = [t.integration_id == integration_id]
    if scope == "validation":
        conditions.append(t.from_validation.is_(True))
    elif scope == "untriaged":
        conditions += [t.responsible.is_(None), t.resolved_at.is_(None)]
    elif scope != "all":
        conditions.append(t.resolved_at.is_(None))
    if kind:
        conditions.append(
            sa.or_(
                t.divergences == kind,
                t.divergences.like(f"{kind}|%"),
                t.divergences.like(f"%|{kind}"),
                t.divergences.like(f"%|{kind}|%"),
            )
        )
    total = db.scalar(sa.select(sa.func.count()).select_from(t).where(*conditions)) or 0
    rows = db.scalars(
        sa.select(t)
        .where(*conditions)
        .order_by(t.resolved_at.is_not(None), t.responsible.is_not(None), t.sale_date, t.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return Page(list(rows), page, per_page, int(total))


def kind_counts(db: Session, integration_id: int) -> dict[str, int]:
    """Open divergences per kind (a receipt with two divergent fields counts in both)."""
    counts: dict[str, int] = defaultdict(int)
    for (divs,) in db.execute(
        sa.select(DivergenceTriage.divergences).where(
            DivergenceTriage.integration_id == integration_id, DivergenceTriage.resolved_at.is_(None)
        )
    ):
        for kind in (divs or "").split("|"):
            if kind:
                counts[kind] += 1
    return dict(counts)


def user_names(db: Session) -> dict[int, str]:
    from onboarding.models import User

    return {u.id: u.display_name for u in db.scalars(sa.select(User))}
