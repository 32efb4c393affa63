"""Properties of the matcher, checked with hypothesis on generated worlds."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciliation.matcher import ReconResult, reconcile
from reconciliation.records import EventType, PaymentType, Receipt, StatementRow, Status
from tests.reconciliation.factories import TZ, event, rows_like

BASE = datetime(2024, 3, 1, 8, 0, tzinfo=TZ)
PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def clean_worlds(draw: st.DrawFn) -> tuple[list[Receipt], list[StatementRow], date]:
    """Distinct receipts (collisions of identifiers allowed) and the retorno that copies them."""
    n = draw(st.integers(0, 24))
    minutes = draw(st.lists(st.integers(0, 5 * 24 * 60), min_size=n, max_size=n, unique=True))
    receipts: list[Receipt] = []
    for k, minute in enumerate(minutes):
        kind = draw(st.sampled_from(["card", "card", "card", "txid", "instant"]))
        est = draw(st.sampled_from(["E1", "E2"]))
        when = BASE + timedelta(minutes=minute, seconds=draw(st.integers(0, 59)))
        if kind == "card":
            payment_type = draw(st.sampled_from([PaymentType.CREDIT, PaymentType.DEBIT, PaymentType.VOUCHER]))
            fields = {
                "payment_type": payment_type,
                "brand": draw(st.sampled_from(["visa", "elo"])),
                "installments": draw(st.integers(1, 4)) if payment_type is PaymentType.CREDIT else 1,
                "nsu": draw(st.sampled_from(["1", "2", "01"])),  # '01' is '1' for the matcher
                "authorization_code": draw(st.sampled_from(["A", "B"])),
                "txid": None,
                "amount_cents": draw(st.integers(1, 3)) * 1000,
            }
        else:
            fields = {
                "payment_type": draw(st.sampled_from([PaymentType.PIX, PaymentType.WALLET])),
                "brand": "pix",
                "installments": 1,
                "nsu": None,
                "authorization_code": None,
                # A txid-less pix pairs on amount and time: give it an amount of its own.
                "txid": f"tx{k}" if kind == "txid" else None,
                "amount_cents": draw(st.integers(1, 3)) * 1000 if kind == "txid" else 100_000 + k,
            }
        receipts.append(
            Receipt(
                sale_id=str(k + 1),
                establishment_code=est,
                sale_datetime=when,
                acquirer=draw(st.sampled_from(["cielo", "rede"])),
                origin="sale",  # type: ignore[arg-type]
                **fields,  # type: ignore[arg-type]
            )
        )
    rows: list[StatementRow] = []
    for r in receipts:
        rows.extend(rows_like(r, 1000 + 20 * int(r.sale_id)))
    last = max((r.sale_datetime.date() for r in receipts), default=BASE.date())
    as_of = last + timedelta(days=draw(st.integers(0, 3)))
    return receipts, rows, as_of


@st.composite
def noisy_worlds(draw: st.DrawFn) -> tuple[list[Receipt], list[StatementRow], date, int]:
    """A clean world damaged at random: changed fields, missing records, copies, events."""
    receipts, rows, as_of = draw(clean_worlds())
    receipts = [r for r in receipts if draw(st.integers(0, 9)) > 0]
    damaged: list[StatementRow] = []
    next_id = 100_000
    for row in rows:
        roll = draw(st.integers(0, 19))
        if roll == 0:
            continue
        if roll == 1:
            row = replace(row, nsu=draw(st.sampled_from(["1", "2", "3", None])))
        elif roll == 2:
            row = replace(row, authorization_code=draw(st.sampled_from(["A", "C", None])))
        elif roll == 3:
            row = replace(row, sale_amount_cents=row.sale_amount_cents + 1000)
        elif roll == 4:
            row = replace(row, sale_date=row.sale_date + timedelta(days=draw(st.integers(-3, 3))))
        damaged.append(row)
        if roll == 5:
            next_id += 1
            damaged.append(replace(row, record_id=str(next_id)))
        elif roll in (6, 7):
            for kind in draw(st.lists(st.sampled_from(list(EventType)[1:]), max_size=3)):
                next_id += 1
                damaged.append(event(row, str(next_id), kind))
    for r in list(receipts):
        if draw(st.integers(0, 9)) == 0:
            receipts.append(replace(r, sale_id=f"c{r.sale_id}"))
        elif draw(st.integers(0, 9)) == 0:
            receipts.append(replace(r, sale_id=f"x{r.sale_id}", corrected_on=as_of - timedelta(days=4)))
    as_of = as_of + timedelta(days=draw(st.integers(-2, 2)))
    return receipts, damaged, as_of, draw(st.integers(0, 4))


def _key(result: ReconResult) -> tuple[object, ...]:
    return (
        result.receipts,
        result.statement,
        result.receipt_status_counts,
        result.statement_status_counts,
        result.divergence_counts,
        result.pairs,
    )


@PROPERTY_SETTINGS
@given(world=noisy_worlds(), data=st.data())
def test_shuffling_the_input_never_changes_the_result(world, data) -> None:
    receipts, rows, as_of, lookback = world
    first = reconcile(receipts, rows, as_of=as_of, lookback_days=lookback)
    shuffled_receipts = data.draw(st.permutations(receipts))
    shuffled_rows = data.draw(st.permutations(rows))
    second = reconcile(shuffled_receipts, shuffled_rows, as_of=as_of, lookback_days=lookback)
    assert _key(first) == _key(second)


@PROPERTY_SETTINGS
@given(world=noisy_worlds())
def test_a_record_is_never_paired_twice(world) -> None:
    receipts, rows, as_of, lookback = world
    result = reconcile(receipts, rows, as_of=as_of, lookback_days=lookback)
    assert len(result.receipts) == len(receipts)
    assert len(result.statement) == len(rows)
    claimed: set[str] = set()
    paired_receipts = 0
    for sale_id, o in result.receipts.items():
        if o.status is Status.DUPLICATE:
            assert o.counterpart_ids[0] in result.receipts
            continue
        if not o.counterpart_ids:
            continue
        paired_receipts += 1
        for rid in o.counterpart_ids:
            assert rid not in claimed, f"row {rid} paired twice"
            claimed.add(rid)
            assert result.statement[rid].counterpart_ids == (sale_id,)
            assert result.statement[rid].status is o.status
    for rid, o in result.statement.items():
        if o.status is Status.DUPLICATE:
            assert o.counterpart_ids[0] in result.statement
        elif o.counterpart_ids:
            (sale_id,) = o.counterpart_ids
            assert rid in result.receipts[sale_id].counterpart_ids
    assert paired_receipts == result.pairs
    assert sum(result.receipt_status_counts.values()) == len(receipts)
    assert sum(result.statement_status_counts.values()) == len(rows)


@PROPERTY_SETTINGS
@given(world=clean_worlds(), lookback=st.integers(0, 5))
def test_exact_copies_of_the_erp_data_reconcile_fully(world, lookback) -> None:
    receipts, rows, as_of = world
    result = reconcile(receipts, rows, as_of=as_of, lookback_days=lookback)
    assert {o.status for o in result.receipts.values()} <= {Status.MATCHED}
    assert {o.status for o in result.statement.values()} <= {Status.MATCHED}
    assert result.pairs == len(receipts)
    for r in receipts:
        first = 1000 + 20 * int(r.sale_id)
        own = tuple(str(first + n) for n in range(r.installments))
        assert result.receipts[r.sale_id].counterpart_ids == own


@PROPERTY_SETTINGS
@given(world=noisy_worlds())
def test_each_establishment_can_be_reconciled_apart(world) -> None:
    # Pairing, grouping and duplicates never cross establishments: a caller may run one
    # establishment at a time (less memory) and get the same outcomes.
    receipts, rows, as_of, lookback = world
    whole = reconcile(receipts, rows, as_of=as_of, lookback_days=lookback)
    merged_receipts, merged_rows, pairs = {}, {}, 0
    for est in {r.establishment_code for r in receipts} | {r.establishment_code for r in rows}:
        part = reconcile(
            [r for r in receipts if r.establishment_code == est],
            [r for r in rows if r.establishment_code == est],
            as_of=as_of,
            lookback_days=lookback,
        )
        merged_receipts.update(part.receipts)
        merged_rows.update(part.statement)
        pairs += part.pairs
    assert merged_receipts == whole.receipts
    assert merged_rows == whole.statement
    assert pairs == whole.pairs
