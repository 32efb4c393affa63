"""Open divergences of an integration and who must act on each: the customer or the integrator.

After every run `refresh` brings the triage rows in line with the stored results of the
integration's establishments (records dated from the first remessa's window on):

- a receipt `divergent` (one row per divergent field kind), `not_found` (no retorno),
  `duplicate` or `manual`;
- a retorno sale (its rows grouped) `not_found` (the ERP lacks the sale), or a duplicated row.

A row that is no longer open gets `resolved_at`; it opens again if the divergence comes back.
The rows open at the validation run (`from_validation`) are the ones step 3 requires triaged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onboarding import audit, services
from onboarding.db import utcnow
from onboarding.errors import InvalidInput, NotFound, WorkflowError
from onboarding.models import User
from reconciliation import csvformat, records
from reconciliation.integration_models import DivergenceTriage, Integration, Responsible
from reconciliation.models import Result, StoredReceipt, StoredStatementRow

SALE = records.Kind.SALE.value
STATEMENT = records.Kind.STATEMENT.value
OPEN_SALE_STATUSES = ("divergent", "not_found", "duplicate", "manual")
OPEN_STATEMENT_STATUSES = ("not_found", "duplicate")

MISSING_RETORNO = "missing_retorno"
MISSING_SALE = "missing_sale"
DUPLICATE_SALE = "duplicate_sale"
DUPLICATE_RETORNO = "duplicate_retorno"
MANUAL = "manual"

KIND_LABELS: dict[str, str] = {
    "amount": "Valor",
    "installments": "Parcelas",
    "brand": "Bandeira",
    "payment_type": "Tipo de pagamento",
    "authorization_code": "Nº de autorização",
    "nsu": "NSU",
    "date": "Data",
    MISSING_RETORNO: "Sem retorno da Boavista",
    MISSING_SALE: "Venda ausente no ERP",
    DUPLICATE_SALE: "Venda duplicada no ERP",
    DUPLICATE_RETORNO: "Linha repetida no retorno",
    MANUAL: "Conciliação manual",
}
# Who usually has to act, offered as a hint: identifiers typed in the store are the customer's to fix.
SUGGESTED: dict[str, str] = {
    "amount": Responsible.CUSTOMER,
    "installments": Responsible.CUSTOMER,
    "brand": Responsible.CUSTOMER,
    "payment_type": Responsible.CUSTOMER,
    "authorization_code": Responsible.CUSTOMER,
    "nsu": Responsible.CUSTOMER,
    "date": Responsible.INTEGRATOR,
    MISSING_RETORNO: Responsible.INTEGRATOR,
    MISSING_SALE: Responsible.CUSTOMER,
    DUPLICATE_SALE: Responsible.CUSTOMER,
    DUPLICATE_RETORNO: Responsible.INTEGRATOR,
    MANUAL: Responsible.CUSTOMER,
}
RESPONSIBLE_LABELS = {
    Responsible.CUSTOMER: "Cliente (operação)",
    Responsible.INTEGRATOR: "Boavista (integradora)",
}
# The mail offered for each responsible party (names of mail_ingest.templates.TEMPLATES).
MAIL_TEMPLATES = {
    Responsible.CUSTOMER: "customer_operation_problem",
    Responsible.INTEGRATOR: "integrator_problem",
}


@dataclass(frozen=True)
class OpenItem:
    kind: str
    record_key: str
    related_keys: tuple[str, ...]
    establishment_code: str
    sale_date: date | None
    amount_cents: int | None
    status: str
    divergences: str


def kinds_of(item_kind: str, status: str, divergences: str) -> list[str]:
    if item_kind == SALE:
        if status == "divergent":
            return [d for d in divergences.split("|") if d]
        return [{"not_found": MISSING_RETORNO, "duplicate": DUPLICATE_SALE, "manual": MANUAL}[status]]
    return [MISSING_SALE if status == "not_found" else DUPLICATE_RETORNO]


def open_items(db: Session, codes: Sequence[str], start: date | None) -> list[OpenItem]:
    """Every open divergence of the establishments `codes` dated from `start` on."""
    if not codes:
        return []
    result = Result.__table__
    receipt = StoredReceipt.__table__
    row = StoredStatementRow.__table__
    items: list[OpenItem] = []
    sale_query = (
        sa.select(
            result.c.record_key,
            result.c.status,
            result.c.divergences,
            receipt.c.establishment_code,
            receipt.c.sale_date,
            receipt.c.amount_cents,
        )
        .join(receipt, receipt.c.sale_id == result.c.record_key)
        .where(result.c.kind == SALE, result.c.establishment_code.in_(list(codes)))
        .where(result.c.status.in_(OPEN_SALE_STATUSES))
    )
    if start is not None:
        sale_query = sale_query.where(receipt.c.sale_date >= start)
    for key, status, divs, code, day, amount in db.execute(sale_query):
        items.append(
            OpenItem(SALE, key, (), code, day, amount, status, "|".join(kinds_of(SALE, status, divs)))
        )
    row_query = (
        sa.select(
            result.c.record_key,
            result.c.status,
            row.c.establishment_code,
            row.c.acquirer,
            row.c.sale_date,
            row.c.nsu,
            row.c.authorization_code,
            row.c.txid,
            row.c.sale_amount_cents,
            row.c.payment_type,
        )
        .join(row, row.c.record_id == result.c.record_key)
        .where(result.c.kind == STATEMENT, result.c.establishment_code.in_(list(codes)))
        .where(result.c.status.in_(OPEN_STATEMENT_STATUSES))
    )
    if start is not None:
        row_query = row_query.where(row.c.sale_date >= start)
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for r in db.execute(row_query):
        # The rows of one unpaired sale (installments, events) are one divergence; duplicates each alone.
        group = (r.status, r.record_key) if r.status == "duplicate" else (r.status, *r[2:])
        groups[group].append(r)
    for members in groups.values():
        ordered = sorted(members, key=lambda m: (len(m.record_key), m.record_key))
        first = ordered[0]
        items.append(
            OpenItem(
                STATEMENT,
                first.record_key,
                tuple(m.record_key for m in ordered[1:]),
                first.establishment_code,
                first.sale_date,
                first.sale_amount_cents,
                first.status,
                "|".join(kinds_of(STATEMENT, first.status, "")),
            )
        )
    return items


def refresh(db: Session, integration: Integration, *, validation: bool = False) -> dict[str, int]:
    """Bring the triage rows of `integration` in line with its current results."""
    codes = [c for c in (records.norm_code(x) for x in integration.establishment_codes) if c]
    current = {(i.kind, i.record_key): i for i in open_items(db, codes, integration.start_date)}
    existing = {
        (t.kind, t.record_key): t
        for t in db.scalars(
            sa.select(DivergenceTriage).where(DivergenceTriage.integration_id == integration.id)
        )
    }
    now = utcnow()
    counts = {"opened": 0, "reopened": 0, "resolved": 0}
    for key, item in current.items():
        row = existing.get(key)
        if row is None:
            row = DivergenceTriage(
                integration_id=integration.id,
                ticket_id=integration.ticket_id,
                kind=item.kind,
                record_key=item.record_key,
                first_seen_run_id=integration.last_run_id,
                first_seen_at=now,
                from_validation=validation,
            )
            db.add(row)
            counts["opened"] += 1
        elif row.resolved_at is not None:
            row.resolved_at = None
            counts["reopened"] += 1
        if validation:
            row.from_validation = True
        row.related_keys = list(item.related_keys)
        row.establishment_code = item.establishment_code
        row.sale_date = item.sale_date
        row.amount_cents = item.amount_cents
        row.status = item.status
        row.divergences = item.divergences
    for key, row in existing.items():
        if key not in current and row.resolved_at is None:
            row.resolved_at = now
            counts["resolved"] += 1
    db.flush()
    return counts


def untriaged_validation_count(db: Session, integration_id: int) -> int:
    return int(
        db.scalar(
            sa.select(sa.func.count())
            .select_from(DivergenceTriage)
            .where(
                DivergenceTriage.integration_id == integration_id,
                DivergenceTriage.from_validation.is_(True),
                DivergenceTriage.responsible.is_(None),
                DivergenceTriage.resolved_at.is_(None),
            )
        )
        or 0
    )


def set_responsible(
    db: Session, actor: User | None, triage_id: int, responsible: str, note: str = ""
) -> DivergenceTriage:
    """The agent marks who must act on a divergence (again, to change it)."""
    services.require_role(actor, services.AGENTS, "definir o responsável pela divergência")
    try:
        who = Responsible(responsible)
    except ValueError:
        raise InvalidInput(
            "invalid_responsible", "Escolha quem deve agir: o cliente (operação) ou a Boavista (integradora)."
        ) from None
    row = db.get(DivergenceTriage, triage_id)
    if row is None:
        raise NotFound("divergence_not_found", f"Divergência {triage_id} não encontrada.")
    ticket = services.get_ticket(db, row.ticket_id, lock=True)
    if ticket.status == "closed":
        raise WorkflowError(
            "ticket_closed", f"O chamado {ticket.number} está encerrado e não aceita alterações."
        )
    note = (note or "").strip()
    if len(note) > 2000:
        raise InvalidInput("note_too_long", "A observação deve ter no máximo 2000 caracteres.")
    before = {"responsible": row.responsible, "note": row.note}
    row.responsible = who.value
    row.note = note
    row.triaged_by_id = actor.id if actor is not None else None
    row.triaged_at = utcnow()
    db.flush()
    audit.record(
        db,
        actor,
        "recon.divergence_triaged",
        row,
        before=before,
        after={
            "ticket_id": row.ticket_id,
            "responsible": row.responsible,
            "note": row.note,
            "kind": row.kind,
            "record": row.record_key,
            "divergences": row.divergences,
        },
    )
    return row


# --- descriptions (screens and mail) ---------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    """A divergence with both sides, for the screens and the problem mails."""

    triage: DivergenceTriage
    receipt: StoredReceipt | None
    rows: tuple[StoredStatementRow, ...]

    @property
    def kinds(self) -> list[str]:
        return [k for k in self.triage.divergences.split("|") if k]

    @property
    def labels(self) -> list[str]:
        return [KIND_LABELS.get(k, k) for k in self.kinds]

    @property
    def suggested(self) -> str:
        for kind in self.kinds:
            if kind in SUGGESTED:
                return SUGGESTED[kind]
        return Responsible.CUSTOMER

    def differences(self) -> list[tuple[str, str, str]]:
        """(field label, in the ERP, in the retorno) of each divergent field."""
        if self.receipt is None or not self.rows:
            return []
        r, s = self.receipt, self.rows[0]
        values = {
            "amount": (_money(r.amount_cents), _money(s.sale_amount_cents)),
            "installments": (str(r.installments), str(s.installments)),
            "brand": (r.brand, s.brand),
            "payment_type": (
                PAYMENT_LABELS.get(r.payment_type, r.payment_type),
                PAYMENT_LABELS.get(s.payment_type, s.payment_type),
            ),
            "authorization_code": (r.authorization_code or "—", s.authorization_code or "—"),
            "nsu": (r.nsu or "—", s.nsu or "—"),
            "date": (_date(r.sale_date), _date(s.sale_date)),
        }
        return [(KIND_LABELS[k], *values[k]) for k in self.kinds if k in values]

    def sentence(self) -> str:
        """One line in pt-BR, e.g. for the problem mails."""
        t = self.triage
        when = _date(t.sale_date) if t.sale_date else "data desconhecida"
        amount = _money(t.amount_cents) if t.amount_cents is not None else ""
        if t.kind == SALE:
            head = f"Venda {t.record_key} (estabelecimento {t.establishment_code}) de {when}, {amount}"
        else:
            s = self.rows[0] if self.rows else None
            ids = f", NSU {s.nsu}" if s is not None and s.nsu else ""
            ids += f", autorização {s.authorization_code}" if s is not None and s.authorization_code else ""
            head = f"Venda da operadora (estabelecimento {t.establishment_code}) de {when}, {amount}{ids}"
        differences = self.differences()
        if differences:
            parts = [f"{label.lower()} no sistema {erp}, no retorno {ret}" for label, erp, ret in differences]
            return f"{head}: " + "; ".join(parts) + "."
        return f"{head}: {'; '.join(label.lower() for label in self.labels)}."


PAYMENT_LABELS = {
    "credit": "crédito",
    "debit": "débito",
    "voucher": "voucher",
    "pix": "Pix",
    "wallet": "carteira digital",
}


def _money(cents: int | None) -> str:
    if cents is None:
        return ""
    return "R$ " + csvformat.format_amount(cents, csvformat.SEMICOLON)


def _date(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


def details(db: Session, rows: Iterable[DivergenceTriage]) -> list[Detail]:
    """Each triage row with its receipt and retorno rows (loaded in a few queries)."""
    rows = list(rows)
    sale_ids = {r.record_key for r in rows if r.kind == SALE}
    receipts = (
        {
            rc.sale_id: rc
            for rc in db.scalars(sa.select(StoredReceipt).where(StoredReceipt.sale_id.in_(sale_ids)))
        }
        if sale_ids
        else {}
    )
    counterparts: dict[str, list[str]] = {}
    if sale_ids:
        for key, ids in db.execute(
            sa.select(Result.record_key, Result.counterpart_ids).where(
                Result.kind == SALE, Result.record_key.in_(sale_ids)
            )
        ):
            counterparts[key] = [i for i in (ids or "").split("|") if i]
    record_ids = {rid for ids in counterparts.values() for rid in ids}
    for r in rows:
        if r.kind == STATEMENT:
            record_ids.update((r.record_key, *r.related_keys))
    statement_rows = (
        {
            s.record_id: s
            for s in db.scalars(
                sa.select(StoredStatementRow).where(StoredStatementRow.record_id.in_(record_ids))
            )
        }
        if record_ids
        else {}
    )
    out = []
    for r in rows:
        if r.kind == SALE:
            ids = counterparts.get(r.record_key, [])
            found = tuple(statement_rows[i] for i in ids if i in statement_rows)
            sale_rows = tuple(s for s in found if s.event_type == "sale") or found
            out.append(Detail(r, receipts.get(r.record_key), sale_rows))
        else:
            keys = (r.record_key, *r.related_keys)
            out.append(Detail(r, None, tuple(statement_rows[k] for k in keys if k in statement_rows)))
    return out


def problems_for(db: Session, ticket_id: int, responsible: str) -> list[str]:
    """The open divergences assigned to `responsible`, one pt-BR sentence each (problem mails)."""
    rows = db.scalars(
        sa.select(DivergenceTriage)
        .where(
            DivergenceTriage.ticket_id == ticket_id,
            DivergenceTriage.responsible == responsible,
            DivergenceTriage.resolved_at.is_(None),
        )
        .order_by(DivergenceTriage.sale_date, DivergenceTriage.id)
        .limit(200)
    )
    return [d.sentence() for d in details(db, rows)]
