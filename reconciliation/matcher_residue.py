"""The columnar matcher's residue (what is not one plain sale), vectorized where no choice is made.

`matcher._Run`'s work after the plain-sale fast path, over frames: duplicates, retorno sales
(installment rows and events), the rule (a) buckets left, rules (b) and (c), unpaired statuses.
Each step is fixed by counts wherever the Python matcher makes no choice between candidates, and
counts are what vectors compute.

An establishment is *irregular*, and left to `reconcile()`, wherever a choice would be made or the
vector form could differ from Python's: a rule (a) bucket with several receipts or several sales
on either side (`_Run.greedy`), a sale repeating an installment number (`_split_by_occurrence`), an
event with several candidate sales (`_best_sale_for`), several receipts or sales on one txid
(rule c, greedy), a retorno time that does not exist in the business time zone, an id with
non-ASCII text (`id_sort_key`), a key shared by too many records, a sale two rule (c) pairs claim.
Establishments never interact (pairing, grouping and duplicates stay inside one), so reconciling
the irregular ones apart with `reconcile()` gives exactly the result of one run over everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import polars as pl

from reconciliation.frames import (
    DIVERGENCE_BIT,
    DIVERGENCES,
    IN_MEMORY,
    KIND,
    RULE,
    STATUS,
    divergences,
    ident,
    lowered,
)
from reconciliation.matcher import (
    PIX_TIME_TOLERANCE_SECONDS,
    RECEIPT_CONTENT_FIELDS,
    ROW_CONTENT_FIELDS,
    RULE_A,
    RULE_A_DATE,
    RULE_B_AUTH,
    RULE_B_NSU,
    RULE_C_TIME,
    RULE_C_TXID,
    RULE_DUPLICATE,
)
from reconciliation.records import Divergence, EventType, Kind, PaymentType, Status
from reconciliation.window import window_start

# Most candidate pairs one key may join before its establishment is left to `reconcile()`.
JOIN_LIMIT = 10_000

# A frame holds the receipt's business-zone wall time where the record holds its instant.
_RECEIPT_CONTENT = tuple("wall" if f == "sale_datetime" else f for f in RECEIPT_CONTENT_FIELDS)
_ROW_CONTENT = ROW_CONTENT_FIELDS
# Numbers copies share: hashed together they find the candidates, which the content decides.
_RECEIPT_QUICK = ("wall", "amount_cents")
_ROW_QUICK = ("sale_date", "sale_time", "installment_number", "gross_amount_cents")
# `matcher._base_key`: a sale's rows and its events share it (the time only without identifiers).
BASE_COLUMNS = (
    "establishment_code",
    "acquirer",
    "sale_date",
    "nsu",
    "authorization_code",
    "installments",
    "txid",
)
_BASE = (*BASE_COLUMNS, "time_if_no_ids")
# The columns of a sale's primary row its outcome reads.
_PRIMARY = (
    "establishment_code",
    "sale_date",
    "sale_time",
    "nsu",
    "authorization_code",
    "txid",
    "sale_amount_cents",
    "installments",
    "brand",
    "payment_type",
)
_BUCKET = ("establishment_code", "nsu_i", "auth_i")
# The columns of the free receipts and sales rules (b) and (c) read.
_FREE = ("establishment_code", "nsu_i", "auth_i", "txid_l", "payment_type", "ts")
_FREE_RECEIPT = ("ri", "r_day", "amount_cents", "txid", *_FREE)
_FREE_SALE = ("sid", "day", "amount", "has_time", *_FREE)
_INSTANT = [PaymentType.PIX.value, PaymentType.WALLET.value]
_SALE = EventType.SALE.value
_OUTCOME = ("status", "divergences", "counterpart_ids", "rule")


@dataclass(frozen=True, slots=True)
class Residue:
    """Outcomes of the regular establishments' records (`RESULT_SCHEMA` columns) and the codes of
    the irregular ones, whose records have no outcome here."""

    frame: pl.DataFrame
    irregular: frozenset[str]


def id_order(column: str) -> list[pl.Expr]:
    """`matcher.id_sort_key` as sort keys, for ASCII ids: numbers in numeric order, then text."""
    text = pl.col(column)
    digits = text.str.contains(r"^[0-9]+$")
    number = text.str.strip_chars_start("0")
    return [
        ~digits,
        pl.when(digits).then(number.str.len_bytes()).otherwise(0),
        pl.when(digits).then(number).otherwise(pl.lit("")),
        text,
    ]


def _non_ascii(column: str) -> pl.Expr:
    return pl.col(column).str.len_bytes() != pl.col(column).str.len_chars()


class _Work:
    def __init__(self, as_of: date, lookback_days: int, zone: ZoneInfo) -> None:
        self.as_of = as_of
        self.start = window_start(as_of, lookback_days)
        self.zone = zone
        self.irregular: set[str] = set()
        self._pending: list[pl.LazyFrame] = []

    def flag(self, frame: pl.DataFrame, condition: pl.Expr) -> None:
        """The establishments of the records meeting `condition` are irregular (known once
        `settle` has run: the checks are collected together)."""
        self._pending.append(frame.lazy().filter(condition).select("establishment_code"))

    def settle(self) -> None:
        found = pl.collect_all(self._pending, engine=IN_MEMORY)
        self._pending.clear()
        for codes in found:
            self.irregular.update(codes.get_column("establishment_code").to_list())

    def regular(self, frame: pl.DataFrame) -> pl.DataFrame:
        self.settle()
        return _outside(frame, self.irregular)


def _outside(frame: pl.DataFrame, codes: set[str] | frozenset[str]) -> pl.DataFrame:
    """The records of `frame` whose establishment is not one of `codes`."""
    if not codes:
        return frame
    return frame.filter(
        ~pl.col("establishment_code").is_in(pl.Series(list(codes), dtype=pl.String).implode())
    )


@dataclass(frozen=True, slots=True)
class ReceiptSide:
    """The residue's receipts, prepared (`receipt_side`): without copies, numbered `ri`."""

    recs: pl.DataFrame
    copies: pl.DataFrame
    irregular: frozenset[str]


def receipt_side(receipts: pl.DataFrame, zone: ZoneInfo) -> ReceiptSide:
    """The receipts' part of `residue_outcomes`, which needs nothing of the rows."""
    irregular = frozenset(receipts.filter(_non_ascii("sale_id")).get_column("establishment_code").to_list())
    recs, copies = _dedupe(
        _prepared_receipts(_outside(receipts, irregular), zone), "sale_id", _RECEIPT_QUICK, _RECEIPT_CONTENT
    )
    return ReceiptSide(recs.with_row_index("ri"), copies, irregular)


def residue_outcomes(
    receipts: Callable[[], ReceiptSide],
    rows: pl.DataFrame,
    *,
    as_of: date,
    lookback_days: int,
    zone: ZoneInfo,
) -> Residue:
    """Outcomes of `reconcile(receipts, rows)` for the regular establishments (module docstring).

    The records are the fast path's residue: no bucket of theirs is one plain sale with its one
    receipt (`_Run.try_pair` fails on each). `receipts` gives their `receipt_side`, which may be
    worked out meanwhile, once the rows are prepared.
    """
    work = _Work(as_of, lookback_days, zone)
    work.flag(rows, _non_ascii("record_id"))
    rows = work.regular(rows)
    kept_rows, row_copies = _dedupe(rows, "record_id", _ROW_QUICK, _ROW_CONTENT)
    row_sale, sales = _sales(work, kept_rows)
    side = receipts()
    recs, receipt_copies = side.recs, side.copies
    work.irregular.update(side.irregular)

    found = _bucket_pairs(work, recs, sales)
    found_all = [found]
    # The general path: rules (b) and (c) in turn over the records dated up to `as_of` still free.
    free_r = recs.select(_FREE_RECEIPT).filter(pl.col("r_day") <= as_of)
    free_s = sales.select(_FREE_SALE).filter(pl.col("day") <= as_of)
    for step in (_rule_b_nsu, _rule_b_auth, _rule_c_txid, _rule_c_time):
        if not found.is_empty():
            free_r = free_r.filter(~pl.col("ri").is_in(found.get_column("ri").implode()))
            free_s = free_s.filter(~pl.col("sid").is_in(found.get_column("sid").implode()))
        found = step(work, free_r, free_s)
        found_all.append(found)
    pairs = pl.concat(found_all, how="vertical")

    receipt_out, sale_out = _emit(work, recs, sales, pairs)
    rows_out = row_sale.join(sale_out, on="sid", how="inner").select(
        pl.lit(Kind.STATEMENT.value, KIND).alias("kind"),
        pl.col("record_id").alias("id"),
        "establishment_code",
        *_OUTCOME,
    )
    frame = pl.concat(
        [
            _copies_out(receipt_copies, Kind.SALE, "sale_id"),
            _copies_out(row_copies, Kind.STATEMENT, "record_id"),
            receipt_out,
            rows_out,
        ],
        how="vertical",
    )
    frame = work.regular(frame)
    return Residue(frame, frozenset(work.irregular))


def _prepared_receipts(receipts: pl.DataFrame, zone: ZoneInfo) -> pl.DataFrame:
    local = pl.col("sale_datetime").dt.convert_time_zone(zone.key)
    return receipts.with_columns(
        r_day=local.dt.date(),
        # Receipts loaded in one time zone compare by wall time (as Python's datetimes do).
        wall=local.dt.replace_time_zone(None),
        ts=pl.col("sale_datetime").dt.epoch("us").cast(pl.Float64) / 1e6,
        nsu_i=ident("nsu"),
        auth_i=ident("authorization_code"),
        txid_l=lowered(receipts, "txid"),
    )


def _dedupe(
    frame: pl.DataFrame, id_column: str, quick: tuple[str, ...], content: tuple[str, ...]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(records kept, copies with the id `kept`): of equal records the lowest id is kept."""
    # Equal records have equal `quick` columns: only those are compared column by column.
    maybe = frame.select(pl.struct(quick).hash().is_duplicated()).to_series()
    if not maybe.any():
        return frame, frame.clear().with_columns(kept=pl.col(id_column))
    copies = (
        frame.filter(maybe)
        .sort(id_order(id_column))
        .with_columns(kept=pl.col(id_column).first().over(content))
        .filter(pl.col(id_column) != pl.col("kept"))
    )
    kept = frame.filter(~pl.col(id_column).is_in(copies.get_column(id_column).implode()))
    return kept, copies


def _copies_out(copies: pl.DataFrame, kind: Kind, id_column: str) -> pl.DataFrame:
    return copies.select(
        pl.lit(kind.value, KIND).alias("kind"),
        pl.col(id_column).alias("id"),
        "establishment_code",
        _status(Status.DUPLICATE).alias("status"),
        pl.lit("", DIVERGENCES).alias("divergences"),
        pl.col("kept").alias("counterpart_ids"),
        pl.lit(RULE_DUPLICATE, RULE).alias("rule"),
    )


def _sales(work: _Work, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`matcher._group_sales` on the kept rows: (record_id, establishment, sale id `sid`) per
    row, and one row per sale: its primary row's columns, its ids, its events."""
    is_sale = pl.col("event_type") == _SALE
    no_ids = pl.col("nsu").is_null() & pl.col("authorization_code").is_null() & pl.col("txid").is_null()
    # Installment rows: one sale per (base, sale amount); events: one orphan sale per
    # (base, sale amount), used only if no sale has their base. Groups are named by their
    # first row's position, the base (`_BASE`, several columns) once by an integer.
    candidate = pl.when(is_sale).then(pl.col("group"))
    grouped = (
        rows.select("record_id", "event_type", "installment_number", "acquirer", *_PRIMARY)
        .with_columns(
            time_if_no_ids=pl.when(no_ids).then(pl.col("sale_time")),
            is_event=~is_sale,
            position=pl.int_range(pl.len(), dtype=pl.Int64),
        )
        .with_columns(base=pl.col("position").first().over(_BASE))
        .with_columns(group=pl.col("position").first().over("base", "sale_amount_cents", "is_event"))
        .with_columns(low=candidate.min().over("base"), high=candidate.max().over("base"))
        .with_columns(
            sid=pl.when(is_sale | pl.col("low").is_null()).then(pl.col("group")).otherwise(pl.col("low"))
        )
    )
    work.flag(grouped, ~is_sale & (pl.col("low") != pl.col("high")))

    # A sale's rows by installment number (one sale repeating a number is irregular), then its
    # events in id order.
    # (Only the columns read from here on: sorting moves every column.)
    columns = ("sid", "group", "record_id", "event_type", "installment_number", *_PRIMARY)
    sale_rows = grouped.select(columns).filter(is_sale).sort("sid", "installment_number")
    same = (pl.col("sid") == pl.col("sid").shift(1)) & (
        pl.col("installment_number") == pl.col("installment_number").shift(1)
    )
    work.flag(sale_rows, same)
    events = grouped.select(columns).filter(~is_sale).sort("sid", *id_order("record_id"))
    # Ids gathered in lists, then joined (as `events_by` does).
    with_rows = (
        sale_rows.group_by("sid", maintain_order=True)
        .agg(row_ids="record_id")
        .with_columns(pl.col("row_ids").list.join("|"))
    )
    with_events = events_by(events, "sid").drop("events")
    # The primary row: the lowest installment number; of an orphan's events, then the lowest id.
    primary = pl.concat(
        [
            sale_rows.unique("sid", keep="first", maintain_order=True),
            events.filter(pl.col("sid") == pl.col("group"))
            .sort("sid", "installment_number", *id_order("record_id"))
            .unique("sid", keep="first", maintain_order=True),
        ],
        how="vertical",
    )
    moment = (
        pl.col("sale_date")
        .dt.combine(pl.col("sale_time"))
        .dt.replace_time_zone(work.zone.key, ambiguous="earliest", non_existent="null")
    )
    sales = primary.select(
        "sid",
        "establishment_code",
        pl.col("sale_date").alias("day"),
        nsu_i=ident("nsu"),
        auth_i=ident("authorization_code"),
        txid_l=lowered(primary, "txid"),
        amount=pl.col("sale_amount_cents"),
        installments=pl.col("installments"),
        brand=pl.col("brand"),
        payment_type=pl.col("payment_type"),
        has_time=pl.col("sale_time").is_not_null(),
        ts=moment.dt.epoch("us").cast(pl.Float64) / 1e6,
    )
    sales = (
        sales.join(with_rows, on="sid", how="left")
        .join(with_events, on="sid", how="left")
        .with_columns(
            ids=pl.concat_str("row_ids", "event_ids", separator="|", ignore_nulls=True),
            has_events=pl.col("event_ids").is_not_null(),
            cancellations=pl.col("cancellations").fill_null(0),
            chargebacks=pl.col("chargebacks").fill_null(0),
            reversals=pl.col("reversals").fill_null(0),
        )
        .drop("row_ids", "event_ids")
    )
    # Python would place a time the clocks skip with its fold; not worth the vector form.
    work.flag(sales, pl.col("has_time") & pl.col("ts").is_null())
    row_sale = grouped.select("record_id", "establishment_code", "sid")
    return row_sale, sales


def _pairs_frame(frame: pl.DataFrame, rule: str) -> pl.DataFrame:
    return frame.select(pl.col("ri"), pl.col("sid"), pl.lit(rule, RULE).alias("rule"))


def _bucket_pairs(work: _Work, recs: pl.DataFrame, sales: pl.DataFrame) -> pl.DataFrame:
    """Rule (a) in the buckets (`_Run.bucket`): one receipt and one sale, both dated up to
    `as_of`, pair (dates more than one day apart: `RULE_A_DATE`); more is a choice."""
    both = pl.col("nsu_i").is_not_null() & pl.col("auth_i").is_not_null()
    by_r = (
        recs.filter(both)
        .group_by(_BUCKET)
        .agg(n_r=pl.len(), ri=pl.col("ri").first(), r_day=pl.col("r_day").first())
    )
    by_s = (
        sales.filter(both)
        .group_by(_BUCKET)
        .agg(n_s=pl.len(), sid=pl.col("sid").first(), day=pl.col("day").first())
    )
    met = by_r.join(by_s, on=_BUCKET, how="inner")
    work.flag(met, (pl.col("n_r") > 1) | (pl.col("n_s") > 1))
    live = met.filter((pl.col("r_day") <= work.as_of) & (pl.col("day") <= work.as_of))
    near = (pl.col("r_day") - pl.col("day")).dt.total_days().abs() <= 1
    return live.select(
        "ri", "sid", rule=pl.when(near).then(pl.lit(RULE_A, RULE)).otherwise(pl.lit(RULE_A_DATE, RULE))
    )


def _candidates(work: _Work, rs: pl.DataFrame, ss: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Every (receipt, sale) sharing `key`, with the number of such pairs of the key `in_key`;
    a key with too many makes its establishment irregular."""
    crowded = crowded_keys(rs.group_by(key).len("n_r").join(ss.group_by(key).len("n_s"), on=key))
    if not crowded.is_empty():
        work.flag(crowded, pl.lit(True))
        rs = rs.join(crowded, on=key, how="anti")
    return rs.join(ss, on=key, how="inner", suffix="_s").with_columns(in_key=pl.len().over(key))


def crowded_keys(sizes: pl.DataFrame) -> pl.DataFrame:
    """The keys whose receipts `n_r` and sales `n_s` would join into more than `JOIN_LIMIT` pairs
    (counted in 64 bits: polars' `len()` is 32-bit, and the product must not wrap around)."""
    return sizes.filter(pl.col("n_r").cast(pl.Int64) * pl.col("n_s") > JOIN_LIMIT)


def _unique_pairs(joined: pl.DataFrame, r_pos: str, s_pos: str, tolerance: float) -> pl.DataFrame:
    """`matcher._unique_pairs` over candidates: pairs that are each other's only candidate within
    `tolerance`, with Python's float arithmetic (one of each: the distance; else the windows)."""
    r, s = pl.col(r_pos), pl.col(s_pos)
    in_r_window = (s >= r - tolerance) & (s <= r + tolerance)
    in_s_window = (r >= s - tolerance) & (r <= s + tolerance)
    counted = joined.with_columns(
        r_count=in_r_window.sum().over("ri"),
        s_count=in_s_window.sum().over("sid"),
    )
    return counted.filter(
        pl.when(pl.col("in_key") == 1)
        .then((r - s).abs() <= tolerance)
        .otherwise(in_r_window & (pl.col("r_count") == 1) & (pl.col("s_count") == 1))
    )


def _rule_b(work: _Work, rs: pl.DataFrame, ss: pl.DataFrame, field: str, rule: str) -> pl.DataFrame:
    key = ["establishment_code", field, "amount"]
    rs = rs.filter(pl.col(field).is_not_null()).select(
        "ri", *key[:2], pl.col("amount_cents").alias("amount"), pos="r_day"
    )
    ss = ss.filter(pl.col(field).is_not_null()).select("sid", *key, pos="day")
    joined = _candidates(work, rs, ss, key).with_columns(pl.col("pos", "pos_s").cast(pl.Int32))
    return _pairs_frame(_unique_pairs(joined, "pos", "pos_s", 1), rule)


def _rule_b_nsu(work: _Work, rs: pl.DataFrame, ss: pl.DataFrame) -> pl.DataFrame:
    return _rule_b(work, rs, ss, "nsu_i", RULE_B_NSU)


def _rule_b_auth(work: _Work, rs: pl.DataFrame, ss: pl.DataFrame) -> pl.DataFrame:
    return _rule_b(work, rs, ss, "auth_i", RULE_B_AUTH)


def _rule_c_txid(work: _Work, rs: pl.DataFrame, ss: pl.DataFrame) -> pl.DataFrame:
    key = ["establishment_code", "txid_l"]
    rs = rs.filter(pl.col("txid_l").is_not_null()).select("ri", *key)
    ss = ss.filter(pl.col("txid_l").is_not_null()).select("sid", *key)
    joined = _candidates(work, rs, ss, key)
    work.flag(joined, pl.col("in_key") > 1)
    return _pairs_frame(joined, RULE_C_TXID)


def _rule_c_time(work: _Work, rs: pl.DataFrame, ss: pl.DataFrame) -> pl.DataFrame:
    key = ["establishment_code", "amount"]
    rs = rs.filter(pl.col("txid").is_null() & pl.col("payment_type").is_in(_INSTANT)).select(
        "ri", "establishment_code", pl.col("amount_cents").alias("amount"), "ts", "nsu_i", "auth_i"
    )
    ss = ss.filter(
        pl.col("txid_l").is_null() & pl.col("payment_type").is_in(_INSTANT) & pl.col("has_time")
    ).select("sid", *key, "ts", "nsu_i", "auth_i")
    found = _unique_pairs(_candidates(work, rs, ss, key), "ts", "ts_s", PIX_TIME_TOLERANCE_SECONDS)
    # A sale that two receipts found (possible only at the float windows' edges) is a choice.
    work.flag(found, pl.len().over("sid") > 1)
    contradict = (
        pl.all_horizontal(pl.col(c).is_not_null() for c in ("nsu_i", "auth_i", "nsu_i_s", "auth_i_s"))
        & (pl.col("nsu_i") != pl.col("nsu_i_s"))
        & (pl.col("auth_i") != pl.col("auth_i_s"))
    )
    return _pairs_frame(found.filter(~contradict), RULE_C_TIME)


def _status(status: Status) -> pl.Expr:
    return pl.lit(status.value, STATUS)


def events_by(events: pl.DataFrame, key: str) -> pl.DataFrame:
    """Per `key` (events sorted by it, then by id): the `|`-joined `event_ids` and how many
    `cancellations`, `chargebacks`, `reversals` and `events` in all."""
    kind = pl.col("event_type")
    return (
        events.group_by(key, maintain_order=True)
        .agg(
            # Ids gathered in lists, then joined: much faster than `str.join` as an aggregation.
            event_ids="record_id",
            cancellations=(kind == EventType.CANCELLATION.value).sum(),
            chargebacks=(kind == EventType.CHARGEBACK.value).sum(),
            reversals=(kind == EventType.CHARGEBACK_REVERSAL.value).sum(),
            events=pl.len(),
        )
        .with_columns(pl.col("event_ids").list.join("|"))
    )


def event_status(status: pl.Expr) -> pl.Expr:
    """`matcher._event_status` for a sale with events (`events_by`'s counts)."""
    return (
        pl.when(pl.col("cancellations") > 0)
        .then(_status(Status.CANCELLED))
        .when(pl.col("chargebacks") > pl.col("reversals"))
        .then(_status(Status.CHARGEBACK))
        .otherwise(status)
    )


def _window_status(day: pl.Expr, work: _Work) -> pl.Expr:
    return (
        pl.when(day > work.as_of)
        .then(_status(Status.PENDING))
        .when(day >= work.start)
        .then(_status(Status.PENDING))
        .otherwise(_status(Status.NOT_FOUND))
    )


def _emit(
    work: _Work, recs: pl.DataFrame, sales: pl.DataFrame, pairs: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(receipt outcomes, sale outcomes by `sid`) as `_Run.emit_pair` and `emit_unpaired_*`."""
    sale_columns = sales.select(
        "sid",
        pl.col("amount").alias("s_amount"),
        pl.col("installments").alias("s_installments"),
        pl.col("brand").alias("s_brand"),
        pl.col("payment_type").alias("s_payment_type"),
        pl.col("nsu_i").alias("s_nsu"),
        pl.col("auth_i").alias("s_auth"),
        "ids",
        "has_events",
        "cancellations",
        "chargebacks",
        "reversals",
    )
    receipt_columns = recs.select(
        "ri",
        "sale_id",
        "establishment_code",
        "amount_cents",
        "installments",
        "brand",
        "payment_type",
        "nsu_i",
        "auth_i",
    )
    paired = pairs.join(receipt_columns, on="ri", how="inner").join(sale_columns, on="sid", how="inner")
    loose = pl.col("rule").is_in([RULE_C_TXID, RULE_C_TIME])

    def differs(r: str, s: str) -> pl.Expr:
        return ~pl.col(r).eq_missing(pl.col(s)) & ~(loose & (pl.col(r).is_null() | pl.col(s).is_null()))

    flags = {
        Divergence.AMOUNT: pl.col("amount_cents") != pl.col("s_amount"),
        Divergence.INSTALLMENTS: pl.col("installments") != pl.col("s_installments"),
        Divergence.BRAND: pl.col("brand") != pl.col("s_brand"),
        Divergence.PAYMENT_TYPE: pl.col("payment_type") != pl.col("s_payment_type"),
        Divergence.AUTHORIZATION_CODE: differs("auth_i", "s_auth"),
        Divergence.NSU: differs("nsu_i", "s_nsu"),
        Divergence.DATE: pl.col("rule") == RULE_A_DATE,
    }
    mask = pl.sum_horizontal(flag.cast(pl.Int32) * DIVERGENCE_BIT[d] for d, flag in flags.items())
    status = pl.when(pl.col("mask") == 0).then(_status(Status.MATCHED)).otherwise(_status(Status.DIVERGENT))
    paired = (
        paired.with_columns(mask=mask)
        .with_columns(status=pl.when(pl.col("has_events")).then(event_status(status)).otherwise(status))
        .with_columns(
            divergences=divergences(
                pl.when(pl.col("status") == Status.DIVERGENT.value).then(pl.col("mask")).otherwise(0)
            )
        )
    )
    unpaired = recs.select("ri", "sale_id", "establishment_code", "r_day", "corrected_on").join(
        pairs, on="ri", how="anti"
    )
    receipt_status = (
        pl.when(pl.col("r_day") > work.as_of)
        .then(_status(Status.PENDING))
        .when(pl.col("corrected_on").is_not_null())
        .then(
            pl.when(pl.col("corrected_on") >= work.start)
            .then(_status(Status.PENDING))
            .otherwise(_status(Status.MANUAL))
        )
        .otherwise(_window_status(pl.col("r_day"), work))
    )
    empty, none, no_rule = pl.lit(""), pl.lit("", DIVERGENCES), pl.lit("", RULE)
    receipt_out = pl.concat(
        [
            paired.select(
                pl.lit(Kind.SALE.value, KIND).alias("kind"),
                pl.col("sale_id").alias("id"),
                "establishment_code",
                "status",
                "divergences",
                pl.col("ids").alias("counterpart_ids"),
                "rule",
            ),
            unpaired.select(
                pl.lit(Kind.SALE.value, KIND).alias("kind"),
                pl.col("sale_id").alias("id"),
                "establishment_code",
                receipt_status.alias("status"),
                none.alias("divergences"),
                empty.alias("counterpart_ids"),
                no_rule.alias("rule"),
            ),
        ],
        how="vertical",
    )
    window = _window_status(pl.col("day"), work)
    sale_state = sales.select("sid", "day", "has_events", "cancellations", "chargebacks", "reversals")
    unpaired_sales = sale_state.join(pairs, on="sid", how="anti").select(
        "sid",
        status=pl.when((pl.col("day") <= work.as_of) & pl.col("has_events"))
        .then(event_status(window))
        .otherwise(window),
        divergences=none,
        counterpart_ids=empty,
        rule=no_rule,
    )
    sale_out = pl.concat(
        [
            paired.select("sid", "status", "divergences", pl.col("sale_id").alias("counterpart_ids"), "rule"),
            unpaired_sales,
        ],
        how="vertical",
    )
    return receipt_out, sale_out
