"""Canonical records: normalization and validation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from reconciliation.records import (
    Divergence,
    EventType,
    Origin,
    PaymentType,
    Receipt,
    Status,
    split_installments,
)
from reconciliation.window import in_window, unpaired_status
from tests.reconciliation.factories import TZ, receipt, sale_rows


def test_text_is_trimmed_and_identifiers_normalized() -> None:
    r = receipt(
        " 42 ", brand=" MasterCard ", acquirer="Cielo ", auth=" ab12 ", nsu="  ", est=" 0123 ", txid=" TxAb "
    )
    assert r.sale_id == "42"
    assert r.brand == "mastercard"
    assert r.acquirer == "cielo"
    assert r.authorization_code == "AB12"
    assert r.nsu is None
    assert r.establishment_code == "0123"
    assert r.txid == "TxAb"  # txid keeps its case (it is sent back in the remessa)


def test_enums_are_coerced_from_their_values() -> None:
    r = replace(receipt(), payment_type="DEBIT", origin="invoice_payment")  # type: ignore[arg-type]
    assert r.payment_type is PaymentType.DEBIT
    assert r.origin is Origin.INVOICE_PAYMENT
    row = replace(sale_rows(1)[0], event_type="chargeback", payment_type="pix")  # type: ignore[arg-type]
    assert row.event_type is EventType.CHARGEBACK
    assert row.payment_type is PaymentType.PIX


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sale_datetime": datetime(2024, 3, 1, 10, 0)}, "fuso"),
        ({"amount_cents": 0}, "amount"),
        ({"amount_cents": 10.5}, "amount"),
        ({"installments": 0}, "installments"),
        ({"brand": "  "}, "brand"),
        ({"payment_type": "cheque"}, "payment_type"),
        ({"origin": "gift"}, "origin"),
        ({"sale_id": ""}, "sale_id"),
    ],
)
def test_receipt_rejects_impossible_values(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(receipt(), **change)


def test_statement_row_rejects_installment_beyond_total() -> None:
    with pytest.raises(ValueError, match="installment_number"):
        replace(sale_rows(1, installments=2)[1], installment_number=3)


def test_receipt_local_date_uses_the_business_time_zone() -> None:
    utc_late = receipt(when="2024-03-14 23:30:00")
    as_utc = replace(utc_late, sale_datetime=utc_late.sale_datetime.astimezone(UTC))
    assert as_utc.sale_datetime.date() == date(2024, 3, 15)
    assert as_utc.local_date(TZ) == date(2024, 3, 14)


def test_split_installments_gives_the_remainder_to_the_first() -> None:
    assert split_installments(10_000, 3) == [3334, 3333, 3333]
    assert split_installments(10_001, 2) == [5001, 5000]
    assert split_installments(-10_000, 3) == [-3334, -3333, -3333]
    assert sum(split_installments(99_999, 12)) == 99_999


def test_divergence_declaration_order_is_the_output_order() -> None:
    assert [d.value for d in Divergence] == [
        "amount",
        "installments",
        "brand",
        "payment_type",
        "authorization_code",
        "nsu",
        "date",
    ]
    assert {s.value for s in Status} == {
        "matched",
        "divergent",
        "pending",
        "not_found",
        "duplicate",
        "cancelled",
        "chargeback",
        "manual",
    }


def test_window_bounds() -> None:
    d = date(2024, 3, 15)
    assert in_window(date(2024, 3, 12), d, 3) and in_window(d, d, 3)
    assert not in_window(date(2024, 3, 11), d, 3) and not in_window(date(2024, 3, 16), d, 3)
    assert unpaired_status(date(2024, 3, 1), d, 3, corrected_on=date(2024, 3, 12)) is Status.PENDING
    assert unpaired_status(date(2024, 3, 1), d, 3, corrected_on=date(2024, 3, 11)) is Status.MANUAL
    with pytest.raises(ValueError):
        in_window(d, d, -1)


def test_receipt_is_hashable_and_frozen() -> None:
    r = receipt()
    assert hash(r) == hash(replace(r))
    with pytest.raises(AttributeError):
        r.brand = "elo"  # type: ignore[misc]
    assert isinstance(r, Receipt)
