"""The matcher, rule by rule and hard case by hard case (SPEC section 8)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from reconciliation.matcher import (
    RULE_A,
    RULE_A_DATE,
    RULE_B_AUTH,
    RULE_B_NSU,
    RULE_C_TIME,
    RULE_C_TXID,
    RULE_DUPLICATE,
    Outcome,
    ReconResult,
)
from reconciliation.records import Divergence, EventType, Kind, PaymentType, Status
from tests.reconciliation.columnar_check import both_matchers
from tests.reconciliation.factories import event, receipt, rows_like, sale_rows

AS_OF = date(2024, 3, 15)
D = Divergence
S = Status


def run(receipts, rows, as_of: date = AS_OF, lookback_days: int = 3) -> ReconResult:
    """`reconcile()`, checked against the columnar matcher on the same records."""
    return both_matchers(receipts, rows, as_of=as_of, lookback_days=lookback_days)[0]


def matched(counterparts: tuple[str, ...], rule: str = RULE_A) -> Outcome:
    return Outcome(S.MATCHED, (), counterparts, rule)


def unpaired(status: Status) -> Outcome:
    return Outcome(status, (), (), "")


# --- rule (a) ------------------------------------------------------------------------------------


def test_identical_sale_matches_under_rule_a() -> None:
    r = receipt("1")
    rows = rows_like(r, 100)
    result = run([r], rows)
    assert result.receipts == {"1": matched(("100",))}
    assert result.statement == {"100": matched(("1",))}
    assert result.pairs == 1
    assert result.receipt_status_counts[S.MATCHED] == 1
    assert result.statement_status_counts[S.MATCHED] == 1


def test_installment_rows_group_into_one_sale_with_rounding_in_the_first() -> None:
    r = receipt("7", amount=10_000, installments=3)
    rows = rows_like(r, 200)
    assert [row.gross_amount_cents for row in rows] == [3334, 3333, 3333]
    result = run([r], list(reversed(rows)))
    assert result.receipts["7"] == matched(("200", "201", "202"))
    for row in rows:
        assert result.statement[row.record_id] == matched(("7",))


def test_rule_a_reports_every_other_field_that_differs_in_canonical_order() -> None:
    r = receipt("1", amount=10_000, installments=2, brand="visa", payment_type="credit")
    rows = rows_like(r, 100, amount=9_990, installments=3, brand="mastercard", payment_type="debit")
    result = run([r], rows)
    divs = (D.AMOUNT, D.INSTALLMENTS, D.BRAND, D.PAYMENT_TYPE)
    assert result.receipts["1"] == Outcome(S.DIVERGENT, divs, ("100", "101", "102"), RULE_A)
    assert all(result.statement[row.record_id] == Outcome(S.DIVERGENT, divs, ("1",), RULE_A) for row in rows)
    assert result.divergence_counts[D.AMOUNT] == 1
    assert result.divergence_counts[D.NSU] == 0


def test_sale_at_23_58_captured_after_midnight_is_not_a_divergence() -> None:
    r = receipt("1", when="2024-03-14 23:58:10")
    rows = rows_like(r, 100, when="2024-03-15 00:00:40")
    assert run([r], rows, as_of=date(2024, 3, 15)).receipts["1"] == matched(("100",))


def test_capture_after_midnight_waits_while_the_capture_day_is_after_as_of() -> None:
    r = receipt("1", when="2024-03-14 23:58:10")
    rows = rows_like(r, 100, when="2024-03-15 00:00:40")
    result = run([r], rows, as_of=date(2024, 3, 14))
    assert result.receipts["1"] == unpaired(S.PENDING)
    assert result.statement["100"] == unpaired(S.PENDING)
    assert result.pairs == 0


def test_both_identifiers_equal_more_than_a_day_apart_is_a_date_divergence() -> None:
    r = receipt("1", when="2024-03-10 10:00:00")
    rows = rows_like(r, 100, when="2024-03-13 10:00:00")
    result = run([r], rows)
    assert result.receipts["1"] == Outcome(S.DIVERGENT, (D.DATE,), ("100",), RULE_A_DATE)


def test_identifiers_compare_trimmed_case_insensitive_and_without_leading_zeros() -> None:
    r = receipt("1", auth=" a1b2c3 ", nsu="00123456", brand=" VISA ")
    rows = rows_like(r, 100, auth="A1B2C3", nsu="123456", brand="Visa")
    assert run([r], rows).receipts["1"] == matched(("100",))


def test_recycled_identifiers_pair_by_closest_agreement() -> None:
    # Same NSU and authorization on two sales the same day: each goes to its own copy.
    r1 = receipt("1", when="2024-03-14 09:00:00", amount=5_000)
    r2 = receipt("2", when="2024-03-14 18:00:00", amount=7_000)
    rows = rows_like(r2, 100) + rows_like(r1, 200)
    result = run([r2, r1], rows)
    assert result.receipts["1"] == matched(("200",))
    assert result.receipts["2"] == matched(("100",))


def test_pairing_stays_inside_one_establishment() -> None:
    r = receipt("1", est="111")
    rows = rows_like(r, 100, est="222")
    result = run([r], rows, as_of=date(2024, 3, 20))
    assert result.receipts["1"] == unpaired(S.NOT_FOUND)
    assert result.statement["100"] == unpaired(S.NOT_FOUND)


# --- rule (b) ------------------------------------------------------------------------------------


def test_nsu_changed_by_reprocessing_pairs_on_authorization_amount_and_date() -> None:
    r = receipt("1", nsu="111111", auth="XYZ123")
    rows = rows_like(r, 100, nsu="999999")
    result = run([r], rows)
    assert result.receipts["1"] == Outcome(S.DIVERGENT, (D.NSU,), ("100",), RULE_B_AUTH)
    assert result.statement["100"] == Outcome(S.DIVERGENT, (D.NSU,), ("1",), RULE_B_AUTH)


def test_wrong_authorization_code_pairs_on_nsu_amount_and_date() -> None:
    r = receipt("1", nsu="111111", auth="WRONG1")
    rows = rows_like(r, 100, auth="RIGHT1")
    result = run([r], rows)
    assert result.receipts["1"] == Outcome(S.DIVERGENT, (D.AUTHORIZATION_CODE,), ("100",), RULE_B_NSU)


def test_missing_authorization_code_on_the_receipt_is_a_divergence() -> None:
    r = receipt("1", auth=None)
    rows = rows_like(r, 100, auth="A1B2C3")
    result = run([r], rows)
    assert result.receipts["1"] == Outcome(S.DIVERGENT, (D.AUTHORIZATION_CODE,), ("100",), RULE_B_NSU)


def test_rule_b_needs_the_same_amount() -> None:
    r = receipt("1", nsu="111111", amount=5_000)
    rows = rows_like(r, 100, nsu="999999", amount=5_001)
    result = run([r], rows)
    assert result.receipts["1"] == unpaired(S.PENDING)
    assert result.statement["100"] == unpaired(S.PENDING)


def test_rule_b_needs_dates_at_most_one_day_apart() -> None:
    r = receipt("1", nsu="111111", when="2024-03-12 10:00:00")
    rows = rows_like(r, 100, nsu="999999", when="2024-03-14 10:00:00")
    assert run([r], rows).receipts["1"] == unpaired(S.PENDING)


def test_repeated_authorization_code_alone_never_pairs() -> None:
    # Two receipts share the authorization code and amount; the retorno sale has that code and
    # an NSU neither has: nothing tells which receipt it is.
    r1 = receipt("1", auth="777777", nsu="100001", when="2024-03-14 10:00:00")
    r2 = receipt("2", auth="777777", nsu="100002", when="2024-03-14 15:00:00")
    rows = sale_rows(100, auth="777777", nsu="555555", when="2024-03-14 12:00:00")
    result = run([r1, r2], rows)
    assert result.receipts["1"] == unpaired(S.PENDING)
    assert result.receipts["2"] == unpaired(S.PENDING)
    assert result.statement["100"] == unpaired(S.PENDING)


def test_repeated_authorization_code_pairs_only_the_receipt_with_the_same_amount() -> None:
    r1 = receipt("1", auth="777777", nsu="100001", amount=5_000)
    r2 = receipt("2", auth="777777", nsu="100002", amount=8_000)
    rows = sale_rows(100, auth="777777", nsu="555555", amount=8_000)
    result = run([r1, r2], rows)
    assert result.receipts["1"] == unpaired(S.PENDING)
    assert result.receipts["2"] == Outcome(S.DIVERGENT, (D.NSU,), ("100",), RULE_B_AUTH)


def test_two_same_amount_sales_in_one_minute_pair_by_their_identifiers() -> None:
    r1 = receipt("1", when="2024-03-14 10:00:05", nsu="200001", auth="AAA111", amount=4_990)
    r2 = receipt("2", when="2024-03-14 10:00:50", nsu="200002", auth="BBB222", amount=4_990)
    rows = rows_like(r2, 100, when="2024-03-14 10:00:10") + rows_like(r1, 200, when="2024-03-14 10:00:55")
    result = run([r1, r2], rows)
    assert result.receipts["1"] == matched(("200",))
    assert result.receipts["2"] == matched(("100",))


def test_same_amount_sales_disagreeing_on_both_identifiers_never_pair() -> None:
    r1 = receipt("1", when="2024-03-14 10:00:05", nsu="200001", auth="AAA111", amount=4_990)
    r2 = receipt("2", when="2024-03-14 10:00:50", nsu="200002", auth="BBB222", amount=4_990)
    rows = sale_rows(100, when="2024-03-14 10:00:10", nsu="300001", auth="CCC333", amount=4_990)
    rows += sale_rows(200, when="2024-03-14 10:00:55", nsu="300002", auth="DDD444", amount=4_990)
    result = run([r1, r2], rows)
    assert result.pairs == 0
    assert {o.status for o in result.receipts.values()} == {S.PENDING}


def test_nsu_shared_by_two_same_amount_receipts_is_not_a_unique_candidate() -> None:
    r1 = receipt("1", nsu="123456", auth="AAA111", amount=3_000)
    r2 = receipt("2", nsu="123456", auth="BBB222", amount=3_000)
    rows = sale_rows(100, nsu="123456", auth="CCC333", amount=3_000)
    result = run([r1, r2], rows)
    assert result.pairs == 0


# --- rule (c) ------------------------------------------------------------------------------------


def test_pix_pairs_by_txid() -> None:
    r = receipt("1", payment_type="pix", brand="pix", nsu=None, auth=None, txid="E1234abcDEF")
    rows = rows_like(r, 100, txid="e1234ABCdef", when="2024-03-14 11:30:00")
    result = run([r], rows)
    assert result.receipts["1"] == matched(("100",), RULE_C_TXID)


def test_pix_by_txid_reports_a_different_amount() -> None:
    r = receipt("1", payment_type="pix", brand="pix", nsu=None, auth=None, txid="TX1")
    rows = rows_like(r, 100, amount=9_000)
    assert run([r], rows).receipts["1"] == Outcome(S.DIVERGENT, (D.AMOUNT,), ("100",), RULE_C_TXID)


def test_pix_without_txid_pairs_by_amount_and_time() -> None:
    r = receipt("1", payment_type="pix", brand="pix", nsu=None, auth=None, when="2024-03-14 10:00:00")
    rows = rows_like(r, 100, when="2024-03-14 10:01:30")
    assert run([r], rows).receipts["1"] == matched(("100",), RULE_C_TIME)


def test_pix_without_txid_more_than_two_minutes_apart_does_not_pair() -> None:
    r = receipt("1", payment_type="pix", brand="pix", nsu=None, auth=None, when="2024-03-14 10:00:00")
    rows = rows_like(r, 100, when="2024-03-14 10:02:01")
    assert run([r], rows).pairs == 0


def test_pix_without_txid_and_two_candidates_does_not_pair() -> None:
    r1 = receipt("1", payment_type="pix", brand="pix", nsu=None, auth=None, when="2024-03-14 10:00:00")
    r2 = receipt("2", payment_type="pix", brand="pix", nsu=None, auth=None, when="2024-03-14 10:01:00")
    rows = rows_like(r1, 100, when="2024-03-14 10:00:30")
    result = run([r1, r2], rows)
    assert result.pairs == 0
    assert result.statement["100"] == unpaired(S.PENDING)


def test_pix_without_time_in_the_retorno_cannot_pair_by_time() -> None:
    r = receipt("1", payment_type="pix", brand="pix", nsu=None, auth=None)
    rows = rows_like(r, 100, with_time=False)
    assert run([r], rows).pairs == 0


def test_wallet_pairs_by_amount_and_time_too() -> None:
    r = receipt("1", payment_type="wallet", brand="picpay", nsu=None, auth=None)
    rows = rows_like(r, 100)
    assert run([r], rows).receipts["1"] == matched(("100",), RULE_C_TIME)


# --- duplicates ----------------------------------------------------------------------------------


def test_duplicates_on_both_sides_name_the_copy_kept() -> None:
    r = receipt("9")
    copy = replace(r, sale_id="10")  # numeric ids: "9" is the lowest
    rows = rows_like(r, 100, installments=1)
    row_copy = replace(rows[0], record_id="101")
    result = run([copy, r], [row_copy, *rows])
    assert result.receipts["10"] == Outcome(S.DUPLICATE, (), ("9",), RULE_DUPLICATE)
    assert result.statement["101"] == Outcome(S.DUPLICATE, (), ("100",), RULE_DUPLICATE)
    assert result.receipts["9"] == matched(("100",))
    assert result.statement["100"] == matched(("9",))
    assert result.receipt_status_counts[S.DUPLICATE] == 1
    assert result.statement_status_counts[S.DUPLICATE] == 1


def test_records_differing_in_one_column_are_not_duplicates() -> None:
    a = receipt("1", nsu=None, auth=None, payment_type="pix", brand="pix", txid="T1")
    b = replace(a, sale_id="2", txid="T2")
    result = run([a, b], [])
    assert {o.status for o in result.receipts.values()} == {S.PENDING}


def test_duplicate_installment_row_is_not_a_second_sale() -> None:
    r = receipt("1", installments=3)
    rows = rows_like(r, 100)
    dup = replace(rows[1], record_id="150")
    result = run([r], [*rows, dup])
    assert result.receipts["1"] == matched(("100", "101", "102"))
    assert result.statement["150"] == Outcome(S.DUPLICATE, (), ("101",), RULE_DUPLICATE)


# --- events --------------------------------------------------------------------------------------


def test_cancellation_cancels_the_receipt_and_every_row_of_the_sale() -> None:
    r = receipt("1", installments=2)
    rows = rows_like(r, 100)
    cancels = [event(rows[0], "300", EventType.CANCELLATION), event(rows[1], "301", EventType.CANCELLATION)]
    result = run([r], rows + cancels)
    expected = Outcome(S.CANCELLED, (), ("100", "101", "300", "301"), RULE_A)
    assert result.receipts["1"] == expected
    for rid in ("100", "101", "300", "301"):
        assert result.statement[rid] == Outcome(S.CANCELLED, (), ("1",), RULE_A)


def test_cancellation_whose_sale_rows_never_came_still_cancels_the_receipt() -> None:
    r = receipt("1")
    cancel = event(rows_like(r, 100)[0], "300", EventType.CANCELLATION)
    result = run([r], [cancel])
    assert result.receipts["1"].status is S.CANCELLED
    assert result.receipts["1"].counterpart_ids == ("300",)


def test_chargeback_stands_against_the_sale() -> None:
    r = receipt("1")
    rows = rows_like(r, 100)
    result = run([r], [*rows, event(rows[0], "300", EventType.CHARGEBACK)])
    assert result.receipts["1"] == Outcome(S.CHARGEBACK, (), ("100", "300"), RULE_A)
    assert result.statement["300"].status is S.CHARGEBACK


def test_chargeback_reversal_restores_the_status_before_the_chargeback() -> None:
    r = receipt("1", brand="visa")
    rows = rows_like(r, 100, brand="elo")
    cb = event(rows[0], "300", EventType.CHARGEBACK)
    rev = event(rows[0], "301", EventType.CHARGEBACK_REVERSAL)
    result = run([r], [rev, *rows, cb])
    assert result.receipts["1"] == Outcome(S.DIVERGENT, (D.BRAND,), ("100", "300", "301"), RULE_A)
    assert result.statement["301"] == Outcome(S.DIVERGENT, (D.BRAND,), ("1",), RULE_A)
    # A second chargeback (a copy of the first would be a duplicate, not a chargeback).
    second_cb = replace(event(rows[0], "302", EventType.CHARGEBACK), expected_payment_date=date(2024, 5, 2))
    assert run([r], [rev, *rows, cb, second_cb]).receipts["1"].status is S.CHARGEBACK


def test_adjustment_changes_no_status() -> None:
    r = receipt("1")
    rows = rows_like(r, 100)
    adj = replace(event(rows[0], "300", EventType.ADJUSTMENT), gross_amount_cents=0, fee_amount_cents=50)
    result = run([r], [*rows, adj])
    assert result.receipts["1"] == matched(("100", "300"))
    assert result.statement["300"] == matched(("1",))


def test_unpaired_cancelled_retorno_sale_is_cancelled() -> None:
    rows = sale_rows(100, when="2024-03-14 10:00:00")
    result = run([], [*rows, event(rows[0], "300", EventType.CANCELLATION)])
    assert result.statement["100"].status is S.CANCELLED
    assert result.statement["300"].status is S.CANCELLED


# --- window and corrections ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "status"),
    [
        ("2024-03-15", S.PENDING),
        ("2024-03-12", S.PENDING),  # D - L: still inside
        ("2024-03-11", S.NOT_FOUND),
        ("2024-03-16", S.PENDING),  # after D: left for a later run
    ],
)
def test_window_pending_versus_not_found(day: str, status: Status) -> None:
    r = receipt("1", when=f"{day} 10:00:00", nsu="1", auth="1")
    rows = sale_rows(100, when=f"{day} 10:00:00", nsu="2", auth="2", amount=1)
    result = run([r], rows, as_of=date(2024, 3, 15), lookback_days=3)
    assert result.receipts["1"] == unpaired(status)
    assert result.statement["100"] == unpaired(status)


def test_records_dated_after_as_of_are_not_paired() -> None:
    r = receipt("1", when="2024-03-16 09:00:00")
    rows = rows_like(r, 100)
    result = run([r], rows, as_of=date(2024, 3, 15))
    assert result.pairs == 0
    assert result.receipts["1"] == unpaired(S.PENDING)
    assert run([r], rows, as_of=date(2024, 3, 16)).receipts["1"] == matched(("100",))


def test_correction_then_match() -> None:
    wrong = receipt("1", nsu="999", auth="ZZZ999", when="2024-03-05 10:00:00")
    rows = sale_rows(100, nsu="123456", auth="A1B2C3", when="2024-03-05 10:00:20")
    before = run([wrong], rows, as_of=date(2024, 3, 15))
    assert before.receipts["1"] == unpaired(S.NOT_FOUND)
    corrected = replace(wrong, nsu="123456", authorization_code="A1B2C3", corrected_on=date(2024, 3, 15))
    after = run([corrected], rows, as_of=date(2024, 3, 15))
    assert after.receipts["1"] == matched(("100",))
    assert after.statement["100"] == matched(("1",))


def test_correction_without_counterpart_is_pending_then_manual() -> None:
    corrected = receipt("1", when="2024-03-01 10:00:00", corrected_on=date(2024, 3, 10))
    assert run([corrected], [], as_of=date(2024, 3, 13)).receipts["1"] == unpaired(S.PENDING)
    assert run([corrected], [], as_of=date(2024, 3, 14)).receipts["1"] == unpaired(S.MANUAL)
    # Never corrected: the sale date alone decides.
    plain = replace(corrected, corrected_on=None)
    assert run([plain], [], as_of=date(2024, 3, 13)).receipts["1"] == unpaired(S.NOT_FOUND)


def test_corrected_receipt_that_still_differs_is_divergent() -> None:
    r = receipt("1", installments=2, corrected_on=date(2024, 3, 15))
    rows = rows_like(r, 100, installments=3)
    assert run([r], rows).receipts["1"].divergences == (D.INSTALLMENTS,)


# --- the result ----------------------------------------------------------------------------------


def test_repeated_ids_are_refused() -> None:
    r = receipt("1")
    with pytest.raises(ValueError, match="sale_id repetido: 1"):
        run([r, replace(r, nsu="999")], [])
    rows = sale_rows(100)
    with pytest.raises(ValueError, match="record_id repetido: 100"):
        run([], [rows[0], replace(rows[0], nsu="999")])


def test_rows_and_summary_cover_every_record() -> None:
    r1 = receipt("1", installments=2)
    r2 = receipt("2", nsu="5", auth="5", when="2024-03-01 10:00:00")
    rows = rows_like(r1, 100)
    result = run([r1, r2], rows)
    listed = {(row.kind, row.id): row.status for row in result.rows()}
    assert listed == {
        (Kind.SALE, "1"): S.MATCHED,
        (Kind.SALE, "2"): S.NOT_FOUND,
        (Kind.STATEMENT, "100"): S.MATCHED,
        (Kind.STATEMENT, "101"): S.MATCHED,
    }
    summary = result.summary()
    assert summary["sales"]["matched"] == 1
    assert summary["sales"]["not_found"] == 1
    assert summary["statement"]["matched"] == 2
    assert summary["pairs"] == 1
    assert summary["as_of"] == "2024-03-15"


def test_payment_type_accepts_strings_and_portuguese_aliases() -> None:
    r = receipt("1", payment_type="Crédito")
    assert r.payment_type is PaymentType.CREDIT


def test_placeholder_identifiers_shared_by_hundreds_of_sales_stay_bounded() -> None:
    # An ERP exporting "0" for unknown NSU and authorization: one huge rule (a) bucket. Only
    # records that also agree on the amount compete; an amount shared by too many stays unpaired.
    n = 300
    receipts = [receipt(str(k), nsu="0", auth="000000", amount=1_000 + k) for k in range(n)]
    rows = [row for k in range(n) for row in sale_rows(10_000 + k, nsu="0", auth="0", amount=1_000 + k)]
    times = [f"2024-03-14 12:{k // 60:02d}:{k % 60:02d}" for k in range(250)]
    crowd = [receipt(f"c{k}", nsu="0", auth="0", amount=77, when=times[k]) for k in range(250)]
    crowd_rows = [
        row for k in range(250) for row in sale_rows(20_000 + k, nsu="0", auth="0", amount=77, when=times[k])
    ]
    result = run(receipts + crowd, rows + crowd_rows)
    assert all(result.receipts[str(k)] == matched((str(10_000 + k),)) for k in range(n))
    assert {result.receipts[f"c{k}"].status for k in range(250)} == {S.PENDING}
