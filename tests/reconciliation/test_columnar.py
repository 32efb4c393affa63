"""The columnar matcher gives exactly `reconcile()`'s result, on generated and on hard data."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciliation import matcher_columnar, synth
from reconciliation.frames import RECEIPT_SCHEMA, receipts_frame, result_frame, statement_frame
from reconciliation.matcher import reconcile
from reconciliation.matcher_columnar import _business_day, _plain_sales, _rows_by_receipt, reconcile_frames
from reconciliation.matcher_residue import crowded_keys
from reconciliation.records import EventType, PaymentType, Receipt, StatementRow, Status
from tests.reconciliation.columnar_check import both_matchers
from tests.reconciliation.factories import TZ, event, receipt, rows_like, sale_rows
from tests.reconciliation.test_properties import BASE, PROPERTY_SETTINGS, clean_worlds, noisy_worlds

AS_OF = date(2024, 3, 15)


@PROPERTY_SETTINGS
@given(world=noisy_worlds())
def test_noisy_worlds_give_the_same_result(world) -> None:
    receipts, rows, as_of, lookback = world
    both_matchers(receipts, rows, as_of=as_of, lookback_days=lookback)


@PROPERTY_SETTINGS
@given(world=clean_worlds(), lookback=st.integers(0, 5))
def test_clean_worlds_give_the_same_result(world, lookback) -> None:
    receipts, rows, as_of = world
    both_matchers(receipts, rows, as_of=as_of, lookback_days=lookback)


@st.composite
def sparse_worlds(draw: st.DrawFn) -> tuple[list[Receipt], list[StatementRow], date, int]:
    """Sales with identifiers of their own (few collisions), damaged the ways an acquirer and an
    ERP damage them: the vector path's ground, most establishments need no choice."""
    n = draw(st.integers(0, 30))
    receipts: list[Receipt] = []
    rows: list[StatementRow] = []
    next_id = 10_000
    for k in range(n):
        kind = draw(st.sampled_from(["card", "card", "card", "txid", "instant"]))
        when = BASE + timedelta(
            minutes=draw(st.integers(0, 4 * 24 * 60)),
            seconds=draw(st.integers(0, 59)),
            microseconds=draw(st.sampled_from([0, 0, 1, 999_999])),
        )
        payment_type = PaymentType.CREDIT
        nsu = auth = txid = None
        if kind == "card":
            payment_type = draw(st.sampled_from([PaymentType.CREDIT, PaymentType.DEBIT]))
            nsu = draw(st.sampled_from([f"{k}", f"0{k}", f"{k % 7}"]))
            auth = draw(st.sampled_from([f"A{k}", f"A{k % 5}"]))
        else:
            payment_type = draw(st.sampled_from([PaymentType.PIX, PaymentType.WALLET]))
            txid = draw(st.sampled_from([f"tx{k}", f"TX{k % 4}"])) if kind == "txid" else None
        r = Receipt(
            sale_id=draw(st.sampled_from([str(k + 1), f"s{k}", f"0{k + 1}"])),
            establishment_code=draw(st.sampled_from(["E1", "E2", "E3"])),
            sale_datetime=when,
            amount_cents=draw(st.sampled_from([1000, 2000, 1000 + k])),
            payment_type=payment_type,
            brand="pix" if kind != "card" else draw(st.sampled_from(["visa", "elo"])),
            acquirer="cielo",
            installments=draw(st.integers(1, 3)) if payment_type is PaymentType.CREDIT else 1,
            authorization_code=auth,
            nsu=nsu,
            origin="sale",  # type: ignore[arg-type]
            txid=txid,
            corrected_on=draw(st.sampled_from([None, None, None, BASE.date(), AS_OF])),
        )
        roll = draw(st.integers(0, 15))
        sale: list[StatementRow] = []
        if roll != 0:  # the integrator lost it
            shift = draw(st.sampled_from([0, 0, 0, 40, 119, 120, 121, 3600, 86_400, 3 * 86_400]))
            local = (r.sale_datetime + timedelta(seconds=shift)).astimezone(TZ)
            sale = rows_like(
                r,
                next_id,
                when=local.replace(tzinfo=None).isoformat(sep=" "),
                nsu=draw(st.sampled_from([r.nsu, r.nsu, "999", None])) if r.nsu else r.nsu,
                auth=draw(st.sampled_from([r.authorization_code, "ZZZ", None]))
                if r.authorization_code
                else None,
                amount=draw(st.sampled_from([r.amount_cents, r.amount_cents, r.amount_cents + 1])),
                brand=draw(st.sampled_from([r.brand, r.brand, "amex"])),
                with_time=draw(st.booleans()) or kind == "card",
            )
            next_id += len(sale)
        if sale and roll in (1, 2):
            for kind_of_event in draw(st.lists(st.sampled_from(list(EventType)[1:]), min_size=1, max_size=3)):
                sale.append(event(sale[0], str(next_id), kind_of_event))
                next_id += 1
        if sale and roll == 3:
            sale.append(replace(sale[-1], record_id=str(next_id)))
            next_id += 1
        if roll != 4:  # the ERP lost it
            receipts.append(r)
            if roll == 5:
                receipts.append(replace(r, sale_id=f"c{k}"))
        rows.extend(sale)
    if len({r.sale_id for r in receipts}) != len(receipts):
        receipts = list({r.sale_id: r for r in receipts}.values())
    as_of = BASE.date() + timedelta(days=draw(st.integers(0, 6)))
    return receipts, rows, as_of, draw(st.integers(0, 4))


@PROPERTY_SETTINGS
@given(world=sparse_worlds())
def test_sparse_worlds_give_the_same_result(world) -> None:
    receipts, rows, as_of, lookback = world
    both_matchers(receipts, rows, as_of=as_of, lookback_days=lookback)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_data_with_every_fault_needs_no_python(seed: int) -> None:
    data = synth.generate(
        3000, seed=seed, start_date=date(2024, 3, 1), days=8, establishments=4, fault_rate=0.6
    )
    _, got = both_matchers(data.receipts, data.statement_rows, as_of=date(2024, 3, 8))
    assert got.python_records == 0


def test_generated_data_at_an_earlier_as_of_and_another_window() -> None:
    data = synth.generate(2000, seed=9, start_date=date(2024, 3, 1), days=8, establishments=3, fault_rate=0.5)
    for as_of, lookback in ((date(2024, 3, 5), 1), (date(2024, 3, 3), 0), (date(2024, 3, 20), 3)):
        both_matchers(data.receipts, data.statement_rows, as_of=as_of, lookback_days=lookback)


def test_a_choice_between_candidates_is_left_to_reconcile_for_that_establishment_only() -> None:
    # Recycled identifiers in E1 (rule a must choose); E2 is plain.
    r1 = receipt("1", when="2024-03-14 09:00:00", amount=5_000, est="E1")
    r2 = receipt("2", when="2024-03-14 18:00:00", amount=7_000, est="E1")
    r3 = receipt("3", nsu="77", auth="X7", est="E2")
    rows = rows_like(r2, 100, est="E1") + rows_like(r1, 200, est="E1")
    rows += rows_like(r3, 300, est="E2", nsu="78")  # rule (b) on the authorization code
    _, got = both_matchers([r1, r2, r3], rows, as_of=AS_OF)
    assert got.python_records == 4


def test_installment_rows_listed_out_of_order_still_make_one_plain_sale() -> None:
    r1 = receipt("1", installments=3, amount=10_000)
    r2 = receipt("2", installments=2, amount=5_000, nsu="222", auth="B2")
    rows = sale_rows(100, installments=3, amount=10_000)[::-1]
    rows += sale_rows(200, installments=2, amount=5_000, nsu="222", auth="B2")
    expected, got = both_matchers([r2, r1], rows, as_of=AS_OF)
    assert got.python_records == 0
    assert expected.receipts["1"].counterpart_ids == ("100", "101", "102")
    assert got.receipt_status_counts[Status.MATCHED] == 2


def test_ids_out_of_order_are_checked_by_their_values() -> None:
    receipts = [receipt("9"), receipt("10", nsu="999", auth="Z9")]
    rows = sale_rows(300) + sale_rows(20, nsu="999", auth="Z9")
    _, got = both_matchers(receipts, rows, as_of=AS_OF)
    assert got.pairs == 2
    with pytest.raises(ValueError, match="sale_id repetido: 9"):
        reconcile_frames(
            receipts_frame([*receipts, replace(receipts[0], nsu="5")]), statement_frame(rows), as_of=AS_OF
        )


def test_repeated_ids_are_refused() -> None:
    r = receipt("1")
    rows = sale_rows(100)
    with pytest.raises(ValueError, match="sale_id repetido: 1"):
        reconcile_frames(receipts_frame([r, replace(r, nsu="999")]), statement_frame(rows), as_of=AS_OF)
    with pytest.raises(ValueError, match="record_id repetido: 100"):
        reconcile_frames(
            receipts_frame([]), statement_frame([rows[0], replace(rows[0], nsu="9")]), as_of=AS_OF
        )


def test_a_negative_look_back_is_refused() -> None:
    with pytest.raises(ValueError, match="lookback_days"):
        reconcile_frames(receipts_frame([]), statement_frame([]), as_of=AS_OF, lookback_days=-1)


def test_sale_datetimes_without_time_zone_are_refused() -> None:
    naive = receipts_frame([receipt("1")]).with_columns(pl.col("sale_datetime").dt.replace_time_zone(None))
    with pytest.raises(ValueError, match="fuso"):
        reconcile_frames(naive, statement_frame([]), as_of=AS_OF)


def test_frames_keep_their_schema_and_utc_instants() -> None:
    r = receipt("1", when="2024-03-14 22:30:00")
    frame = receipts_frame([r])
    assert frame.schema == pl.Schema(RECEIPT_SCHEMA)
    assert frame["sale_datetime"][0] == datetime(2024, 3, 15, 1, 30, tzinfo=UTC)


def test_non_ascii_text_compares_as_python_lowers_it() -> None:
    # 'K' (Kelvin sign) lower-cases to ASCII 'k' in Python: both txids are one bucket.
    r = receipt("1", nsu=None, auth=None, txid="\u212aey", payment_type="pix", brand="pix")
    rows = rows_like(r, 100, txid="key")
    _, got = both_matchers([r], rows, as_of=AS_OF)
    assert got.pairs == 1


def fast_path_events(receipts: list[Receipt], rows: list[StatementRow], as_of: date) -> set[str]:
    """Ids of the events the fast path attaches to its pairs (the rest go to the residue)."""
    left, right = receipts_frame(receipts), statement_frame(rows)
    pairs = _plain_sales(*_rows_by_receipt(left, right, as_of, TZ), left, right, as_of)
    return set(pairs.events.get_column("record_id").to_list())


def test_events_of_a_plain_sale_are_applied_on_the_fast_path() -> None:
    cancelled = receipt("1", installments=3, amount=9_000, nsu="11", auth="A1")
    rows = sale_rows(100, installments=3, amount=9_000, nsu="11", auth="A1")
    # The cancellation names another amount: events join their sale by base, not by amount.
    rows.append(replace(event(rows[0], "1000", EventType.CANCELLATION), sale_amount_cents=3_000))
    reversed_ = receipt("2", nsu="22", auth="B2")
    rows += sale_rows(200, nsu="22", auth="B2")
    rows += [
        event(rows[-1], "1001", EventType.CHARGEBACK),
        event(rows[-1], "999", EventType.CHARGEBACK_REVERSAL),
    ]
    charged = receipt("3", nsu="33", auth="C3", brand="master")  # a divergence a chargeback hides
    rows += sale_rows(300, nsu="33", auth="C3")
    rows.append(event(rows[-1], "1002", EventType.CHARGEBACK))
    adjusted = receipt("4", nsu="44", auth="D4", amount=12_000)  # divergent, and stays so
    rows += sale_rows(400, nsu="44", auth="D4")
    rows.append(event(rows[-1], "1003", EventType.ADJUSTMENT))
    late = receipt("5", nsu="55", auth="E5", when="2024-03-14 10:00:00")
    rows += sale_rows(500, nsu="55", auth="E5", when="2024-03-11 10:00:00")  # rule (a) by date
    rows.append(event(rows[-1], "1004", EventType.ADJUSTMENT))
    receipts = [cancelled, reversed_, charged, adjusted, late]

    expected, got = both_matchers(receipts, rows, as_of=AS_OF)
    assert fast_path_events(receipts, rows, AS_OF) == {"999", "1000", "1001", "1002", "1003", "1004"}
    assert got.python_records == 0
    assert expected.receipts["1"].status is Status.CANCELLED
    assert expected.receipts["2"].counterpart_ids == ("200", "999", "1001")
    assert expected.receipts["3"].status is Status.CHARGEBACK
    assert expected.receipts["3"].divergences == ()
    assert expected.receipts["4"].status is Status.DIVERGENT
    assert expected.receipts["5"].status is Status.DIVERGENT
    assert got.pairs == 5


def test_events_that_are_not_plainly_their_sales_go_to_the_residue() -> None:
    receipts, rows = [], []
    # An event dated another day (an orphan), two copies of one event, two events of one type
    # and installment that are not copies, an event in a txid bucket, an event with a non-ASCII id.
    for k, (kind, tweak) in enumerate(
        [
            ("orphan", lambda e: replace(e, sale_date=date(2024, 3, 13))),
            ("copies", None),
            ("twins", None),
            ("txid", None),
            ("non_ascii", lambda e: replace(e, record_id="é1")),
        ]
    ):
        nsu, auth, txid = (None, None, f"tx{k}") if kind == "txid" else (f"9{k}", f"Z{k}", None)
        r = receipt(str(k + 1), nsu=nsu, auth=auth, txid=txid, est=f"E{k}")
        sale = rows_like(r, 100 * (k + 1))
        cancel = event(sale[0], f"{100 * (k + 1)}9", EventType.CANCELLATION)
        extra = [tweak(cancel)] if tweak else [cancel]
        if kind == "copies":
            extra.append(replace(cancel, record_id=f"{100 * (k + 1)}8"))
        if kind == "twins":
            extra.append(replace(cancel, record_id=f"{100 * (k + 1)}8", gross_amount_cents=-1))
        receipts.append(r)
        rows += sale + extra
    plain = receipt("9", nsu="1", auth="P1", est="E9")
    receipts.append(plain)
    rows += rows_like(plain, 900)
    rows.append(event(rows[-1], "901", EventType.CHARGEBACK))

    expected, _ = both_matchers(receipts, rows, as_of=AS_OF)
    assert fast_path_events(receipts, rows, AS_OF) == {"901"}
    assert expected.statement["2009"].status is Status.DUPLICATE  # the lower id is kept


def test_events_of_a_sale_dated_after_as_of_wait_with_it() -> None:
    # The only bucket is no pair (its sale is dated after `as_of`), though its event fits.
    r = receipt("1", when="2024-03-14 10:00:00")
    rows = sale_rows(100, when="2024-03-20 10:00:00")
    rows.append(event(rows[0], "200", EventType.CANCELLATION))
    expected, got = both_matchers([r], rows, as_of=AS_OF)
    assert got.pairs == expected.pairs == 0
    assert expected.statement["200"].status is Status.PENDING


def test_a_bucket_with_two_receipts_is_no_fast_pair_even_when_one_is_dated_later() -> None:
    # The second receipt is dated after `as_of`, yet it shares the bucket: the fast path must
    # leave the bucket whole to the residue, which gives the Python matcher's result.
    early = receipt("1", when="2024-03-14 10:00:00")
    late = receipt("2", when="2024-03-20 10:00:00")
    rows = sale_rows(100)
    joined, events = _rows_by_receipt(receipts_frame([early, late]), statement_frame(rows), AS_OF, TZ)
    assert joined.is_empty() and events.is_empty()
    alone, _ = _rows_by_receipt(receipts_frame([early]), statement_frame(rows), AS_OF, TZ)
    assert alone.height == 1
    both_matchers([early, late], rows, as_of=AS_OF)


def test_buckets_whose_hashes_collide_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every record hashed to one bucket: the receipt meets rows of another sale, which the
    # identifiers themselves tell apart (the Python matcher leaves both unpaired).
    keyed = matcher_columnar._keyed
    monkeypatch.setattr(
        matcher_columnar, "_keyed", lambda *a, **k: keyed(*a, **k).with_columns(h=pl.lit(0, pl.UInt64))
    )
    r = receipt("1", nsu="111", auth="A1")
    rows = sale_rows(100, nsu="222", auth="B2", installments=2)
    expected, got = both_matchers([r], rows, as_of=AS_OF)
    assert got.pairs == expected.pairs == 0


def test_an_event_with_two_candidate_sales_is_left_to_reconcile() -> None:
    # Installment rows of one base but two sale amounts are two sales; the cancellation names the
    # second one's amount, which the Python matcher prefers (`_best_sale_for`). No authorization
    # code: no rule (a) bucket, whose two sales alone would be a choice.
    r = receipt("1", installments=2, amount=10_000, auth=None)
    first, second = rows_like(r, 100)
    second = replace(second, sale_amount_cents=9_000)
    cancel = replace(event(second, "200", EventType.CANCELLATION), sale_amount_cents=9_000)
    expected, got = both_matchers([r], [first, second, cancel], as_of=AS_OF)
    assert expected.statement["200"].counterpart_ids == expected.statement["101"].counterpart_ids
    assert got.python_records == 4


def test_a_time_zone_without_a_name_gives_the_same_result() -> None:
    # A fixed offset: the residue goes to reconcile().
    zone = timezone(timedelta(hours=-3))
    data = synth.generate(400, seed=4, start_date=date(2024, 3, 1), days=5, establishments=2, fault_rate=0.4)
    expected = reconcile(data.receipts, data.statement_rows, as_of=date(2024, 3, 4), tz=zone)
    got = reconcile_frames(
        receipts_frame(data.receipts), statement_frame(data.statement_rows), as_of=date(2024, 3, 4), tz=zone
    )
    want = result_frame(expected, data.receipts, data.statement_rows).sort("kind", "id")
    assert got.frame.sort("kind", "id").equals(want)
    assert got.summary() == expected.summary()


@pytest.mark.parametrize(
    "zone",
    [
        ZoneInfo("America/Sao_Paulo"),
        ZoneInfo("America/New_York"),  # clocks change on whole UTC hours
        ZoneInfo("Australia/Lord_Howe"),  # by half an hour, within a UTC hour
        timezone(timedelta(hours=5, minutes=45)),
    ],
    ids=str,
)
@pytest.mark.parametrize("start", [datetime(2018, 10, 25, tzinfo=UTC), datetime(2024, 9, 25, tzinfo=UTC)])
def test_business_days_are_those_python_computes(zone, start: datetime) -> None:
    # Every 7 minutes 13 seconds over six weeks, across clock changes and local midnights.
    instants = [start + timedelta(seconds=433 * k) for k in range(8_400)]
    frame = pl.DataFrame(
        {"sale_datetime": instants}, schema={"sale_datetime": RECEIPT_SCHEMA["sale_datetime"]}
    )
    days = frame.select(_business_day(frame, zone)).to_series().to_list()
    assert days == [at.astimezone(zone).date() for at in instants]


def test_a_key_too_crowded_to_join_is_found_even_past_32_bits() -> None:
    # 65,536 x 65,536 candidate pairs is 2**32: a 32-bit product would wrap around to 0.
    sizes = pl.DataFrame(
        {"key": ["wide", "past", "small"], "n_r": [65_536, 70_000, 3], "n_s": [65_536, 70_000, 4]},
        schema={"key": pl.String, "n_r": pl.UInt32, "n_s": pl.UInt32},
    )
    assert crowded_keys(sizes).get_column("key").to_list() == ["wide", "past"]
