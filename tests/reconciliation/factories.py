"""Small builders for receipts and retorno rows in tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta

from reconciliation.records import (
    EventType,
    Origin,
    PaymentType,
    Receipt,
    StatementRow,
    business_tz,
    split_installments,
)

TZ = business_tz()
EST = "1020304050"


def at(text: str) -> datetime:
    """'2024-03-14 10:00:00' in the business time zone."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def receipt(
    sale_id: str = "1",
    *,
    when: str = "2024-03-14 10:00:00",
    amount: int = 10_000,
    payment_type: PaymentType | str = PaymentType.CREDIT,
    brand: str = "visa",
    acquirer: str = "cielo",
    installments: int = 1,
    auth: str | None = "A1B2C3",
    nsu: str | None = "123456",
    est: str = EST,
    txid: str | None = None,
    tid: str | None = None,
    corrected_on: date | None = None,
    origin: Origin = Origin.SALE,
) -> Receipt:
    return Receipt(
        sale_id=sale_id,
        establishment_code=est,
        sale_datetime=at(when),
        amount_cents=amount,
        payment_type=payment_type,  # type: ignore[arg-type]
        brand=brand,
        acquirer=acquirer,
        installments=installments,
        authorization_code=auth,
        nsu=nsu,
        origin=origin,
        tid=tid,
        txid=txid,
        terminal="T01",
        cnpj="11222333000181",
        corrected_on=corrected_on,
    )


def sale_rows(
    first_id: int,
    *,
    when: str = "2024-03-14 10:00:20",
    amount: int = 10_000,
    installments: int = 1,
    brand: str = "visa",
    payment_type: PaymentType | str = PaymentType.CREDIT,
    auth: str | None = "A1B2C3",
    nsu: str | None = "123456",
    est: str = EST,
    acquirer: str = "cielo",
    txid: str | None = None,
    with_time: bool = True,
) -> list[StatementRow]:
    """The retorno rows of one sale, one per installment, ids first_id, first_id + 1, ..."""
    moment = datetime.fromisoformat(when)
    rows = []
    for n, gross in enumerate(split_installments(amount, installments), start=1):
        fee = gross * 2 // 100
        rows.append(
            StatementRow(
                record_id=str(first_id + n - 1),
                establishment_code=est,
                acquirer=acquirer,
                brand=brand,
                payment_type=payment_type,  # type: ignore[arg-type]
                sale_date=moment.date(),
                sale_time=moment.time() if with_time else None,
                authorization_code=auth,
                nsu=nsu,
                tid=None,
                txid=txid,
                installments=installments,
                installment_number=n,
                sale_amount_cents=amount,
                gross_amount_cents=gross,
                fee_amount_cents=fee,
                net_amount_cents=gross - fee,
                expected_payment_date=moment.date() + timedelta(days=30 * n),
                event_type=EventType.SALE,
            )
        )
    return rows


def rows_like(r: Receipt, first_id: int, **overrides: object) -> list[StatementRow]:
    """The retorno a faithful integrator sends for receipt `r`."""
    local = r.sale_datetime.astimezone(TZ)
    fields: dict[str, object] = {
        "when": local.replace(tzinfo=None).isoformat(sep=" "),
        "amount": r.amount_cents,
        "installments": r.installments,
        "brand": r.brand,
        "payment_type": r.payment_type,
        "auth": r.authorization_code,
        "nsu": r.nsu,
        "est": r.establishment_code,
        "acquirer": r.acquirer,
        "txid": r.txid,
    }
    fields.update(overrides)
    return sale_rows(first_id, **fields)  # type: ignore[arg-type]


def event(row: StatementRow, record_id: str, kind: EventType) -> StatementRow:
    sign = 1 if kind in (EventType.CHARGEBACK_REVERSAL, EventType.ADJUSTMENT) else -1
    return replace(
        row,
        record_id=record_id,
        gross_amount_cents=sign * row.gross_amount_cents,
        fee_amount_cents=sign * row.fee_amount_cents,
        net_amount_cents=sign * row.net_amount_cents,
        event_type=kind,
    )


def clock(text: str) -> time:
    return time.fromisoformat(text)
