"""The synthetic generator: deterministic, realistic, and its expectations are what the matcher says."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date

import pytest

from reconciliation import synth
from reconciliation.matcher import reconcile
from reconciliation.records import EventType, Kind, PaymentType, Status


def test_same_seed_same_data_and_another_seed_other_data() -> None:
    a = synth.generate(300, seed=5, start_date=date(2024, 3, 1), days=5, establishments=3, fault_rate=0.3)
    b = synth.generate(300, seed=5, start_date=date(2024, 3, 1), days=5, establishments=3, fault_rate=0.3)
    c = synth.generate(300, seed=6, start_date=date(2024, 3, 1), days=5, establishments=3, fault_rate=0.3)
    assert a == b
    assert a.receipts != c.receipts


def test_data_look_like_a_pharmacy_day() -> None:
    data = synth.generate(2000, seed=1, start_date=date(2024, 3, 1), days=3, establishments=["11", "22"])
    types = {r.payment_type for r in data.receipts}
    assert types == set(PaymentType)
    assert {r.establishment_code for r in data.receipts} == {"11", "22"}
    assert any(r.installments > 1 for r in data.receipts)
    pix = [r for r in data.receipts if r.payment_type is PaymentType.PIX]
    assert any(r.txid for r in pix) and any(r.txid is None for r in pix)
    assert all(r.brand == "pix" and r.nsu is None for r in pix)
    by_sale: dict[tuple[str, str | None, str | None, str | None], list[int]] = defaultdict(list)
    for row in data.statement_rows:
        assert row.event_type is EventType.SALE  # no faults asked
        by_sale[(row.establishment_code, row.nsu, row.authorization_code, row.txid)].append(
            row.gross_amount_cents
        )
    sale_amounts = {
        (r.establishment_code, r.nsu, r.authorization_code, r.txid): r.amount_cents for r in data.receipts
    }
    for key, grosses in by_sale.items():
        if key[1] is None and key[3] is None:
            continue  # txid-less pix: no key to join on here
        assert sum(grosses) == sale_amounts[key]
        assert grosses[0] >= max(grosses)  # the first installment takes the remainder


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_expectation_holds_with_all_faults(seed: int) -> None:
    data = synth.generate(
        1500, seed=seed, start_date=date(2024, 3, 1), days=8, establishments=4, fault_rate=0.6
    )
    result = reconcile(data.receipts, data.statement_rows, as_of=date(2024, 3, 8), lookback_days=3)
    _assert_expected(data, result)
    statuses = {o.status for o in result.receipts.values()} | {o.status for o in result.statement.values()}
    assert statuses >= {
        Status.MATCHED,
        Status.DIVERGENT,
        Status.PENDING,
        Status.NOT_FOUND,
        Status.DUPLICATE,
        Status.CANCELLED,
        Status.CHARGEBACK,
    }


def test_expectations_follow_an_earlier_as_of_and_another_window() -> None:
    as_of = date(2024, 3, 5)
    data = synth.generate(
        1500,
        seed=9,
        start_date=date(2024, 3, 1),
        days=8,
        establishments=2,
        fault_rate=0.5,
        as_of=as_of,
        lookback_days=1,
    )
    rng = random.Random(0)
    receipts, rows = list(data.receipts), list(data.statement_rows)
    rng.shuffle(receipts)
    rng.shuffle(rows)
    result = reconcile(receipts, rows, as_of=as_of, lookback_days=1)
    _assert_expected(data, result)
    assert any(r.sale_datetime.date() > as_of for r in data.receipts)


def test_unknown_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown faults"):
        synth.generate(1, seed=1, start_date=date(2024, 3, 1), days=1, faults=["typo"])


def _assert_expected(data: synth.SyntheticData, result) -> None:
    assert len(data.expected) == len(data.receipts) + len(data.statement_rows)
    wrong = []
    for (kind, record_id), expected in data.expected.items():
        got = (result.receipts if kind is Kind.SALE else result.statement)[record_id]
        if (got.status, got.divergences, got.counterpart_ids) != (
            expected.status,
            expected.divergences,
            expected.counterpart_ids,
        ):
            wrong.append((kind, record_id, expected, got))
    assert not wrong, wrong[:5]


def test_retorno_for_a_remessa_answers_every_receipt_with_expectations() -> None:
    sales = synth.generate(800, seed=4, start_date=date(2024, 3, 1), days=4, establishments=2)
    answer = synth.retorno_for(sales.receipts, seed=11, fault_rate=0.5, first_record_id=5_000_000)
    assert answer.receipts == sales.receipts
    assert min(int(r.record_id) for r in answer.statement_rows) >= 5_000_000
    result = reconcile(answer.receipts, answer.statement_rows, as_of=date(2024, 3, 4))
    _assert_expected(answer, result)
    assert result.receipt_status_counts[Status.DIVERGENT] > 0
    assert result.statement_status_counts[Status.DUPLICATE] > 0
    clean = synth.retorno_for(sales.receipts, seed=11)
    # A day later, so that a sale captured after the last midnight is in too.
    clean_result = reconcile(clean.receipts, clean.statement_rows, as_of=date(2024, 3, 5))
    assert {o.status for o in clean_result.receipts.values()} == {Status.MATCHED}


def test_retorno_for_refuses_erp_side_faults() -> None:
    with pytest.raises(ValueError, match="unknown faults"):
        synth.retorno_for([], seed=1, faults=[synth.MISSING_ERP])
