"""Corrections of ERP receipts (SPEC section 8, "Corrections"), as on the correction screen.

A correction is dated by the clock in the business time zone, audited (who, what, before and
after), marks the receipt for the next remessa and makes its establishment's results stale: the
next run re-pairs the receipt with its new fields (pending while the correction is inside the
window, `manual` after it if still without counterpart).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from onboarding import audit
from onboarding.errors import InvalidInput, NotFound
from onboarding.models import User
from reconciliation import clock, csvformat, records, store
from reconciliation.importers import bump_establishments, parse_amount_any
from reconciliation.models import Correction, StoredReceipt

# Correctable field -> receipt attribute.
FIELDS = {
    "authorization_code": "authorization_code",
    "nsu": "nsu",
    "installments": "installments",
    "brand": "brand",
    "payment_type": "payment_type",
    "amount": "amount_cents",
}


def _parse(name: str, value: Any) -> Any:
    if name in ("authorization_code", "nsu"):
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise ValueError(f"{name}: valor inválido {value!r}")
        return "" if value is None else str(value)
    if name == "installments":
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(f"installments deve ser >= 1, recebido {value}")
            return value
        return csvformat.parse_int(str(value if value is not None else ""), "installments")
    if name == "brand":
        if not isinstance(value, str) or not value.strip():
            raise ValueError("brand é obrigatório")
        return value
    if name == "payment_type":
        return records.parse_payment_type(str(value if value is not None else ""))
    cents = parse_amount_any(value, "amount")
    if cents <= 0:
        raise ValueError("amount deve ser maior que zero")
    return cents


def _jsonable(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


def correct_sale(
    db: Session,
    sale_id: str,
    changes: Mapping[str, Any],
    *,
    actor: User | None,
    source: str,
    tz: ZoneInfo,
) -> tuple[StoredReceipt, Correction]:
    """Apply a correction; refuses (InvalidInput / NotFound) without changing anything."""
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        allowed = ", ".join(FIELDS)
        raise InvalidInput(
            "invalid_field", f"Campo(s) não corrigível(is): {', '.join(unknown)}. Use: {allowed}."
        )
    if not changes:
        raise InvalidInput("no_changes", "Informe ao menos um campo a corrigir.")
    stored = db.scalars(select(StoredReceipt).where(StoredReceipt.sale_id == sale_id.strip())).first()
    if stored is None:
        raise NotFound("sale_not_found", f"Recebimento {sale_id} não encontrado.")
    current = store.receipt_from_values([getattr(stored, f) for f in store.RECEIPT_FIELDS], tz)
    try:
        new_values = {FIELDS[name]: _parse(name, value) for name, value in changes.items()}
        corrected = dataclasses.replace(current, **new_values)
    except ValueError as error:
        raise InvalidInput("invalid_correction", f"Correção inválida: {error}") from None
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name, attr in FIELDS.items():
        old, new = getattr(current, attr), getattr(corrected, attr)
        if old != new:
            before[name] = _jsonable(old)
            after[name] = _jsonable(new)
    if not after:
        raise InvalidInput("nothing_changed", "A correção não altera nenhum campo do recebimento.")
    corrected_on = clock.today(tz)
    for name in after:
        attr = FIELDS[name]
        setattr(stored, attr, store.plain(getattr(corrected, attr)))
    stored.corrected_on = corrected_on
    stored.resend_pending = True
    correction = Correction(
        receipt_id=stored.id,
        sale_id=stored.sale_id,
        corrected_on=corrected_on,
        corrected_at=clock.now(),
        user_id=actor.id if actor is not None else None,
        source=source,
        before=before,
        after=after,
    )
    db.add(correction)
    bump_establishments(db, [stored.establishment_code])
    db.flush()
    audit.record(
        db,
        actor,
        "recon.sale_corrected",
        stored,
        before=before,
        after={**after, "corrected_on": corrected_on.isoformat(), "source": source},
    )
    db.flush()
    return stored, correction


def sale_as_dict(stored: StoredReceipt, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "sale_id": stored.sale_id,
        "establishment_code": stored.establishment_code,
        "sale_datetime": stored.sale_datetime.astimezone(tz).isoformat(),
        "amount": csvformat.format_amount(stored.amount_cents),
        "amount_cents": stored.amount_cents,
        "payment_type": stored.payment_type,
        "brand": stored.brand,
        "acquirer": stored.acquirer,
        "installments": stored.installments,
        "authorization_code": stored.authorization_code,
        "nsu": stored.nsu,
        "origin": stored.origin,
        "tid": stored.tid,
        "txid": stored.txid,
        "terminal": stored.terminal,
        "cnpj": stored.cnpj,
        "corrected_on": stored.corrected_on.isoformat() if stored.corrected_on else None,
        "resend_pending": stored.resend_pending,
    }
