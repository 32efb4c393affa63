"""The pure matcher over polars frames: exactly `matcher.reconcile()`'s result, in a fraction of its time.

Input: a receipts frame and a retorno frame (`reconciliation.frames`); output: a `FrameResult`,
one row per record (the result CSV's columns and the establishment) and the counts of
`ReconResult.summary()`.

Three parts:
- The fast path: `matcher._Run.try_pair` on every bucket at once. A bucket holds the records of
  one establishment carrying both NSU and authorization code, by identifiers without leading zeros
  (rule a), or neither of them but a txid, by lower-cased txid (rule c). A bucket with exactly one
  receipt and retorno sale rows that are one plain sale (installment rows sharing every
  `_PLAIN_SALE_KEY` column, distinct installment numbers), both dated up to `as_of`, is a pair:
  primary row the lowest installment number, outcome as `_Run.emit_pair` computes it. A rule (a)
  bucket may also hold events of that sale (`_event_misfits` says which fit): `try_pair` fails
  there, and `_Run.bucket` pairs the one receipt with the one sale, events applied.
- The residue, every other record: vectorized where the Python matcher makes no choice between
  candidates (`reconciliation.matcher_residue`), by establishment.
- `reconcile()` itself on the residue of the establishments where it would choose.

Why this is exact: the Python matcher puts the same records in the same buckets, and a bucket the
fast path pairs never reaches its general path: `try_pair` succeeds, emits the pair and hands
nothing on (no duplicate can hide in it, no other record competes for its members, nothing is
left); with events, `bucket` finds one candidate on each side and emits that pair. Every other
bucket is in the residue whole, with its duplicates, events and rule (a) candidates, and so is
every record outside buckets: `reconcile()` on the residue does exactly the work the full run
does on those records, because the full run's general path sees the same records and
`reconcile()` does not depend on the order of its input. Pairing, grouping and
duplicates never cross establishments, so the residue may be split by establishment. Counts add up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from reconciliation import matcher
from reconciliation.frames import (
    DIVERGENCE_BIT,
    IN_MEMORY,
    KIND,
    RESULT_COLUMNS,
    RULE,
    STATUS,
    divergences,
    lowered,
    receipt_records,
    result_frame,
    statement_records,
)
from reconciliation.matcher import RULE_A, RULE_A_DATE, RULE_C_TXID, id_sort_key, reconcile
from reconciliation.matcher_residue import (
    BASE_COLUMNS,
    ReceiptSide,
    Residue,
    event_status,
    events_by,
    id_order,
    receipt_side,
    residue_outcomes,
)
from reconciliation.records import Divergence, EventType, Kind, Status, business_tz
from reconciliation.window import DEFAULT_LOOKBACK_DAYS, window_start

# Columns of the sale rows the fast path reads to find its pairs, once paired by bucket.
_ROW_COLUMNS = (
    "record_id",
    "establishment_code",
    "nsu",
    "authorization_code",
    "txid",
    "sale_amount_cents",
    "sale_date",
    "installments",
    "acquirer",
)
# Columns of the fast pairs' rows, and of their first rows, read once they are picked.
_KEPT_COLUMNS = ("r_at", "s_at", "record_id", "establishment_code", "first", "last")
_HEAD_COLUMNS = (
    "r_at",
    "s_at",
    "r_day",
    "record_id",
    "establishment_code",
    "nsu",
    "sale_amount_cents",
    "sale_date",
    "installments",
    "last",
)
# Columns of a fast pair's primary row its outcome reads (beside `_HEAD_COLUMNS`).
_PRIMARY_COLUMNS = ("brand", "payment_type")
# Raw identifiers the receipt and the rows of a fast pair must all carry.
_IDENTIFIER_COLUMNS = ("establishment_code", "nsu", "authorization_code", "txid")
# Columns the rows of a fast pair share: the identifiers and the other plain-sale columns.
_SHARED_COLUMNS = (*_IDENTIFIER_COLUMNS, "sale_amount_cents", "sale_date", "installments", "acquirer")
# Columns of the events of a fast pair's bucket it reads.
_EVENT_COLUMNS = ("record_id", "event_type", "installment_number", *BASE_COLUMNS)
# The first and the last row of each receipt's run of rows (rows ordered by receipt `r_at`).
_FIRST_OF_RUN = (pl.col("r_at") != pl.col("r_at").shift(1)).fill_null(True)
_LAST_OF_RUN = (pl.col("r_at") != pl.col("r_at").shift(-1)).fill_null(True)
# Columns of a fast pair's receipt its outcome reads (beside the identifiers).
_RECEIPT_COLUMNS = ("sale_id", "amount_cents", "installments", "brand", "payment_type")


@dataclasses.dataclass(frozen=True, slots=True)
class FrameResult:
    """Outcome of every record as a frame (`frames.RESULT_SCHEMA`, no significant row order) and
    the counts of `ReconResult`; `python_records` went through `reconcile()`."""

    as_of: date
    lookback_days: int
    frame: pl.DataFrame
    receipt_status_counts: Mapping[Status, int]
    statement_status_counts: Mapping[Status, int]
    divergence_counts: Mapping[Divergence, int]
    pairs: int
    python_records: int = 0

    def summary(self) -> dict[str, Any]:
        """The same JSON-ready counts as `ReconResult.summary()`."""
        return matcher.summary_of(self)


def reconcile_frames(
    receipts: pl.DataFrame,
    statement_rows: pl.DataFrame,
    *,
    as_of: date,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    tz: tzinfo | None = None,
) -> FrameResult:
    """`matcher.reconcile()` over frames (see the module docstring); `ValueError` on repeated ids."""
    zone = tz or business_tz()
    window_start(as_of, lookback_days)  # refuses a negative look-back
    if receipts.schema["sale_datetime"].time_zone is None:  # type: ignore[attr-defined]
        raise ValueError("sale_datetime deve ter fuso horário")
    sale_rows, events = _rows_by_receipt(receipts, statement_rows, as_of, zone)
    pairs = _plain_sales(sale_rows, events, receipts, statement_rows, as_of)
    del sale_rows, events  # released now: what follows reuses their memory, not fresh pages
    # The fast pairs' outcomes, the residue's receipts and its rows share nothing: threads
    # (polars works without the GIL), the residue's receipts first on the fast pairs' one.
    prepared: Future[tuple[pl.DataFrame, ReceiptSide | None]] = Future()
    with ThreadPoolExecutor(max_workers=2) as pool:
        fast = pool.submit(_fast_side, pairs, receipts, statement_rows, zone, prepared)
        left = pool.submit(_left_over, prepared, statement_rows, pairs.taken(), as_of, lookback_days, zone)
        parts, tally = fast.result()
        left_receipts, _ = prepared.result()
        left_rows, residue = left.result()
    if residue is not None:
        parts.append(residue.frame)
        tally.add_frame(residue.frame)
        codes = pl.Series(list(residue.irregular), dtype=pl.String).implode()
        left_receipts = left_receipts.filter(pl.col("establishment_code").is_in(codes))
        left_rows = left_rows.filter(pl.col("establishment_code").is_in(codes))
    python_records = left_receipts.height + left_rows.height
    if python_records:
        recs = receipt_records(left_receipts, zone)
        rows = statement_records(left_rows)
        rest = reconcile(recs, rows, as_of=as_of, lookback_days=lookback_days, tz=zone)
        parts.append(result_frame(rest, recs, rows))
        tally.add_result(rest)
    return FrameResult(
        as_of=as_of,
        lookback_days=lookback_days,
        frame=pl.concat(parts, how="vertical"),
        receipt_status_counts=tally.receipts,
        statement_status_counts=tally.statement,
        divergence_counts=tally.divergences,
        pairs=tally.pairs,
        python_records=python_records,
    )


class _Tally:
    """The counts of `ReconResult`, added up from the parts of a result."""

    def __init__(self) -> None:
        self.receipts = dict.fromkeys(Status, 0)
        self.statement = dict.fromkeys(Status, 0)
        self.divergences = dict.fromkeys(Divergence, 0)
        self.pairs = 0

    def add_frame(self, frame: pl.DataFrame) -> None:
        paired = (pl.col("counterpart_ids") != "") & (pl.col("status") != Status.DUPLICATE.value)
        counts = (
            frame.lazy()
            .group_by("kind", "status", "divergences", paired.alias("paired"))
            .len()
            .collect(engine=IN_MEMORY)
        )
        for kind, status, divergences_text, is_pair, n in counts.iter_rows():
            if kind == Kind.STATEMENT.value:
                self.statement[Status(status)] += n
                continue
            self.receipts[Status(status)] += n
            self.pairs += n if is_pair else 0
            for divergence in divergences_text.split("|") if divergences_text else ():
                self.divergences[Divergence(divergence)] += n

    def add_result(self, result: matcher.ReconResult) -> None:
        for status, n in result.receipt_status_counts.items():
            self.receipts[status] += n
        for status, n in result.statement_status_counts.items():
            self.statement[status] += n
        for divergence, n in result.divergence_counts.items():
            self.divergences[divergence] += n
        self.pairs += result.pairs


def _check_ids(receipts: pl.DataFrame, rows: pl.DataFrame) -> None:
    """The error `reconcile()` raises for ids repeated on one side."""
    sides = ((receipts, "sale_id"), (rows, "record_id"))
    # Ids in increasing order (as stores often list them) are distinct; otherwise distinct hashes
    # are distinct ids, and equal ones are looked at closely.
    increasing = pl.collect_all(
        [
            frame.lazy().select((pl.col(column) > pl.col(column).shift(1)).slice(1).all(ignore_nulls=False))
            for frame, column in sides
        ],
        engine=IN_MEMORY,
    )
    unsorted = [side for side, known in zip(sides, increasing, strict=True) if not known.item()]
    counts = pl.collect_all(
        [frame.lazy().select(pl.col(column).hash().n_unique()) for frame, column in unsorted],
        engine=IN_MEMORY,
    )
    for (frame, column), count in zip(unsorted, counts, strict=True):
        if count.item() == frame.height:
            continue
        ids = frame.get_column(column)
        if ids.n_unique() != ids.len():
            repeated = ids.filter(ids.is_duplicated()).unique().to_list()
            listed = ", ".join(sorted(repeated, key=id_sort_key)[:5])
            raise ValueError(f"{column} repetido: {listed}")


def _fast_side(
    pairs: _FastPairs,
    receipts: pl.DataFrame,
    rows: pl.DataFrame,
    zone: tzinfo,
    prepared: Future[tuple[pl.DataFrame, ReceiptSide | None]],
) -> tuple[list[pl.DataFrame], _Tally]:
    """The fast pairs' thread: their heads, then the residue's receipts (into `prepared`, which the
    residue awaits), then the fast pairs' outcomes and their counts, once no id is repeated
    (`_check_ids`: the pairs do not depend on the ids, and the check is cheaper here)."""
    try:
        heads = pairs.heads
        prepared.set_result(_receipts_left(receipts, heads, zone))
    except BaseException as error:
        prepared.set_exception(error)
        raise
    _check_ids(receipts, rows)
    primary = rows.select(_PRIMARY_COLUMNS)[heads.get_column("s_at")]
    heads = pl.concat([heads, primary, _receipt_columns(receipts, _RECEIPT_COLUMNS, heads)], how="horizontal")
    return _tallied_outcomes(pairs.kept, heads, pairs.events)


def _receipt_columns(receipts: pl.DataFrame, columns: tuple[str, ...], heads: pl.DataFrame) -> pl.DataFrame:
    """`columns` of the receipt of each of `heads`, as `r_<column>`."""
    return receipts.select(columns)[heads.get_column("r_at")].rename(lambda c: f"r_{c}")


def _receipts_left(
    receipts: pl.DataFrame, heads: pl.DataFrame, zone: tzinfo
) -> tuple[pl.DataFrame, ReceiptSide | None]:
    """The receipts the fast path did not pair and, in a `ZoneInfo`, their `receipt_side`."""
    left = _without(receipts, heads.get_column("r_at"))
    return left, receipt_side(left, zone) if isinstance(zone, ZoneInfo) else None


def _left_over(
    receipts_left: Future[tuple[pl.DataFrame, ReceiptSide | None]],
    rows: pl.DataFrame,
    taken: pl.Series,
    as_of: date,
    lookback_days: int,
    zone: tzinfo,
) -> tuple[pl.DataFrame, Residue | None]:
    """The rows the fast path did not pair (`taken`: positions of those it did) and, in a
    `ZoneInfo`, the residue's outcomes."""
    left_rows = _without(rows, taken)
    if not isinstance(zone, ZoneInfo):
        return left_rows, None

    def side() -> ReceiptSide:
        prepared = receipts_left.result()[1]
        assert prepared is not None  # a `ZoneInfo`
        return prepared

    residue = residue_outcomes(side, left_rows, as_of=as_of, lookback_days=lookback_days, zone=zone)
    return left_rows, residue


def _without(frame: pl.DataFrame, positions: pl.Series) -> pl.DataFrame:
    keep = pl.repeat(True, frame.height, dtype=pl.Boolean, eager=True).scatter(positions, False)
    return frame[keep.arg_true()]  # a gather: few records are left


def _keyed(frame: pl.DataFrame, strip: tuple[bool, bool], **columns: pl.Expr) -> pl.LazyFrame:
    """The records of `frame` that have a bucket: position `at`, `columns` and the bucket's hash `h`.

    The hash only gathers the records of one bucket (identifiers without leading zeros: a value
    of zeros only hashes as '', a relabelling of `_ident`'s '0'); the pairs found are checked on
    the identifiers themselves, so a collision can only send buckets to the residue. `strip`
    says whether any NSU / authorization code of either side has leading zeros at all."""
    nsu, auth, txid = pl.col("nsu"), pl.col("authorization_code"), pl.col("txid")
    establishment = pl.col("establishment_code").hash(0)
    card = (nsu.str.strip_chars_start("0") if strip[0] else nsu).hash(1) ^ (
        auth.str.strip_chars_start("0") if strip[1] else auth
    ).hash(2)
    instant = lowered(frame, "txid").hash(3)
    # Column by column (no key text is built), and each kind of bucket apart: lower-casing a
    # column costs as much for its nulls as for its text.
    numbered = frame.lazy().with_row_index("at")
    return pl.concat(
        [
            numbered.filter(nsu.is_not_null() & auth.is_not_null()).select(
                "at", h=establishment ^ card, **columns
            ),
            numbered.filter(nsu.is_null() & auth.is_null() & txid.is_not_null()).select(
                "at", h=establishment ^ instant, **columns
            ),
        ]
    )


def _leading_zeros(frame: pl.DataFrame) -> pl.LazyFrame:
    """Whether any NSU, any authorization code of `frame` starts with '0'."""
    return frame.lazy().select(pl.col("nsu", "authorization_code").str.starts_with("0").any())


def _rows_by_receipt(
    receipts: pl.DataFrame, rows: pl.DataFrame, as_of: date, zone: tzinfo
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The sale rows of the buckets with one receipt dated up to `as_of`, by receipt (position
    `r_at`, business day `r_day`) then installment number, with their position `s_at` and
    `_ROW_COLUMNS`; and the other rows of those buckets, their events (`r_at`, `s_at`)."""
    day = _business_day(receipts, zone)

    def keyed(strip: tuple[bool, bool]) -> list[pl.LazyFrame]:
        return [
            _keyed(receipts, strip, r_day=day).select("h", "r_day", r_at="at").sort("r_at"),
            _keyed(
                rows,
                strip,
                number=pl.col("installment_number"),
                sale=pl.col("event_type") == EventType.SALE.value,
            ).rename({"at": "s_at"}),
        ]

    # Keyed as if no identifier had leading zeros (the common case), beside the check; again,
    # stripping them, if some have.
    keyed_receipts, keyed_rows, *zeros = pl.collect_all(
        [*keyed((False, False)), _leading_zeros(receipts), _leading_zeros(rows)], engine=IN_MEMORY
    )
    strip = (
        any(found.item(0, "nsu") for found in zeros),
        any(found.item(0, "authorization_code") for found in zeros),
    )
    if any(strip):
        keyed_receipts, keyed_rows = pl.collect_all(keyed(strip), engine=IN_MEMORY)
    # The receipts alone in their bucket, dated up to `as_of`. Repeated hashes are found sorted:
    # `is_unique` builds a hash table, slower and many times larger.
    hashes = keyed_receipts.get_column("h").sort()
    repeated = hashes.filter(hashes == hashes.shift(1)).implode()
    singles = keyed_receipts.filter(~pl.col("h").is_in(repeated) & (pl.col("r_day") <= as_of))
    # In the order of `singles` (by receipt); a receipt's rows as the retorno lists them, most
    # often by installment number already. The order is checked, not trusted; that of equal
    # numbers does not matter (such a run is no plain sale).
    joined = keyed_rows.join(singles, on="h", how="inner", maintain_order="right")
    events = joined.select("r_at", "s_at", "sale").filter(~pl.col("sale")).drop("sale")
    joined = joined.filter("sale")
    r_at, number = pl.col("r_at"), pl.col("number")
    in_order = (r_at > r_at.shift(1)) | ((r_at == r_at.shift(1)) & (number >= number.shift(1)))
    if not joined.select(in_order.all()).item():
        joined = joined.sort("r_at", "number")
    joined = joined.select("r_at", "s_at", "number", "r_day")
    sale_rows = pl.concat([joined, rows.select(_ROW_COLUMNS)[joined.get_column("s_at")]], how="horizontal")
    return sale_rows, events


@dataclasses.dataclass(frozen=True, slots=True)
class _FastPairs:
    """The fast pairs: their sale rows `kept` (by receipt, flags `first` and `last` of each run),
    their `heads` (one per pair: its first row, whose identifiers its receipt carries) and their
    events (`r_at`, `s_at`, `record_id`, `establishment_code`, `event_type`; by pair then id)."""

    kept: pl.DataFrame
    heads: pl.DataFrame
    events: pl.DataFrame

    def taken(self) -> pl.Series:
        """Positions of every retorno row the fast pairs hold."""
        return self.kept.get_column("s_at").append(self.events.get_column("s_at"))


def _plain_sales(
    paired: pl.DataFrame, events: pl.DataFrame, receipts: pl.DataFrame, rows: pl.DataFrame, as_of: date
) -> _FastPairs:
    """The buckets of `_rows_by_receipt` that are one receipt and one plain sale, with the events
    of that sale if any (`_event_misfits`)."""

    def same_as_before(column: str) -> pl.Expr:
        return pl.col(column).eq_missing(pl.col(column).shift(1))

    first, last = _FIRST_OF_RUN, _LAST_OF_RUN
    # The sale rows of a bucket are one plain sale: dated up to `as_of`, one per installment
    # number, sharing every plain-sale column and (stricter than the bucket, never looser) the
    # raw identifiers, which the receipt must carry too (`_strangers`).
    row_ok = (pl.col("sale_date") <= as_of) & (
        first | (pl.all_horizontal(same_as_before(c) for c in _SHARED_COLUMNS) & ~same_as_before("number"))
    )
    # A run is bad if it holds a bad row, its receipt other identifiers or its bucket a misfit
    # event (few do). Receipts and events are looked at meanwhile: the two share nothing.
    bad_at = pl.col("r_at").filter(~row_ok).implode()
    with ThreadPoolExecutor(max_workers=1) as pool:
        looked_at = pool.submit(_misfits_and_strangers, paired, events, receipts, rows)
        marked = paired.with_columns(first=first, last=last, keep=~pl.col("r_at").is_in(bad_at))
        found, unfit = looked_at.result()
    if not unfit.is_empty():
        marked = marked.with_columns(keep=pl.col("keep") & ~pl.col("r_at").is_in(unfit.implode()))
    # (Only the columns read later are picked: filtering moves every column.)
    keep, head = pl.col("keep"), pl.col("first") & pl.col("keep")
    kept, heads = pl.collect_all(
        [
            marked.lazy().select(*_KEPT_COLUMNS, "keep").filter(keep).drop("keep"),
            marked.lazy().select(*_HEAD_COLUMNS, head=head).filter("head").drop("head"),
        ],
        engine=IN_MEMORY,
    )
    # The events of the buckets still paired.
    if kept.is_empty():
        found = found.clear()
    r_at = kept.get_column("r_at")
    at = r_at.search_sorted(found.get_column("r_at")).clip(0, max(kept.height - 1, 0))
    return _FastPairs(kept, heads, found.filter(pl.col("r_at") == r_at.gather(at)))


def _misfits_and_strangers(
    paired: pl.DataFrame, events: pl.DataFrame, receipts: pl.DataFrame, rows: pl.DataFrame
) -> tuple[pl.DataFrame, pl.Series]:
    """`_event_misfits` and, beside its buckets, those of `_strangers`."""
    found, misfits = _event_misfits(paired, events, rows)
    return found, misfits.append(_strangers(paired, receipts))


def _strangers(paired: pl.DataFrame, receipts: pl.DataFrame) -> pl.Series:
    """The buckets (`r_at`) whose receipt does not carry the raw identifiers of the first row (a
    hash collision, or other leading zeros or letter case: the residue's)."""
    heads = paired.select("r_at", *_IDENTIFIER_COLUMNS).filter(_FIRST_OF_RUN)
    both = pl.concat([heads, _receipt_columns(receipts, _IDENTIFIER_COLUMNS, heads)], how="horizontal")
    carried = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"r_{c}")) for c in _IDENTIFIER_COLUMNS)
    return both.filter(~carried).get_column("r_at")


def _event_misfits(
    paired: pl.DataFrame, events: pl.DataFrame, rows: pl.DataFrame
) -> tuple[pl.DataFrame, pl.Series]:
    """The events of the buckets of `paired` (`_EVENT_COLUMNS`, sorted by bucket then id) and the
    buckets (`r_at`) where one does not fit.

    An event fits when it shares its bucket's sale rows' `_base_key` (those of a plain sale all
    share it: the first is compared), in a rule (a) bucket, and no other event of the bucket has
    its type and installment number (so no event is a copy, of another or of a sale row). Then
    `_group_sales` attaches every event to the one sale, and `_Run.bucket` pairs it with the one
    receipt (one candidate each): `emit_pair` with events."""
    if paired.is_empty():  # only buckets of events: none of them a pair
        events = events.clear()
    found = pl.concat([events, rows.select(_EVENT_COLUMNS)[events.get_column("s_at")]], how="horizontal")
    # The first sale row of the event's bucket (of another bucket if it has none: no pair then).
    run_start = paired.get_column("r_at").search_sorted(events.get_column("r_at"))
    sale = paired.select(BASE_COLUMNS)[run_start.clip(0, max(paired.height - 1, 0))]
    found = pl.concat([found, sale.rename(lambda c: f"s_{c}")], how="horizontal")
    record_id = pl.col("record_id")
    fits = (
        pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"s_{c}")) for c in BASE_COLUMNS)
        & pl.col("nsu").is_not_null()  # a rule (a) bucket (a txid bucket with events is not)
        & (record_id.str.len_bytes() == record_id.str.len_chars())  # `id_order` reads ASCII
        & (pl.len().over("r_at", "event_type", "installment_number") == 1)
    )
    found = found.with_columns(fits=fits)
    misfits = found.filter(~pl.col("fits")).get_column("r_at").unique()
    if not misfits.is_empty():
        found = found.filter(~pl.col("r_at").is_in(misfits.implode()))
    found = found.select("r_at", "s_at", "record_id", "establishment_code", "event_type")
    return found.sort("r_at", *id_order("record_id")), misfits


def _eventful(events: pl.DataFrame) -> pl.DataFrame:
    """For each pair with events (with their head's position `at`): `at`, `event_ids`,
    `event_status` (null if the events leave the status as it is) and how many `events`."""
    by_pair = events_by(events, "at")
    return by_pair.select("at", "event_ids", "events", event_status=event_status(pl.lit(None, STATUS)))


def _tallied_outcomes(
    kept: pl.DataFrame, heads: pl.DataFrame, events: pl.DataFrame
) -> tuple[list[pl.DataFrame], _Tally]:
    """`_outcomes` and their counts (sums of flags: far cheaper than grouping)."""
    receipts_out, rows_out, masks = _outcomes(kept, heads, events)
    status, mask = pl.col("status"), pl.col("mask")
    by_status = [(status == s.value).sum().alias(s.value) for s in Status]
    by_divergence = [((mask & bit) != 0).sum().alias(d.value) for d, bit in DIVERGENCE_BIT.items()]
    receipt_counts, row_counts = pl.collect_all(
        [masks.lazy().select(*by_status, *by_divergence), rows_out.lazy().select(*by_status)],
        engine=IN_MEMORY,
    )
    tally = _Tally()
    tally.pairs = receipts_out.height
    for status_value in Status:
        tally.receipts[status_value] += receipt_counts.item(0, status_value.value)
        tally.statement[status_value] += row_counts.item(0, status_value.value)
    for divergence in Divergence:
        tally.divergences[divergence] += receipt_counts.item(0, divergence.value)
    return [receipts_out, rows_out], tally


def _outcomes(
    kept: pl.DataFrame, heads: pl.DataFrame, events: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The outcomes of the fast pairs' receipts and rows, as `_Run.emit_pair` computes them, and
    each receipt's status and divergence mask."""
    # Each event with its head's position.
    events = events.with_columns(at=heads.get_column("r_at").search_sorted(events.get_column("r_at")))
    eventful = _eventful(events)
    # Computed on the primary rows (those of one sale differ in brand and payment type only).
    ids_bucket = pl.col("nsu").is_not_null()  # the receipt's (`_strangers`)
    far = ids_bucket & ((pl.col("r_day") - pl.col("sale_date")).dt.total_days().abs() > 1)
    mask = pl.sum_horizontal(
        (pl.col("r_amount_cents") != pl.col("sale_amount_cents")).cast(pl.UInt8)
        * DIVERGENCE_BIT[Divergence.AMOUNT],
        (pl.col("r_installments") != pl.col("installments")).cast(pl.UInt8)
        * DIVERGENCE_BIT[Divergence.INSTALLMENTS],
        (pl.col("r_brand") != pl.col("brand")).cast(pl.UInt8) * DIVERGENCE_BIT[Divergence.BRAND],
        (pl.col("r_payment_type") != pl.col("payment_type")).cast(pl.UInt8)
        * DIVERGENCE_BIT[Divergence.PAYMENT_TYPE],
        far.cast(pl.UInt8) * DIVERGENCE_BIT[Divergence.DATE],
    )
    primaries = heads.select(
        pl.col("r_sale_id").alias("id"),
        "establishment_code",
        "record_id",
        one_row="last",
        mask=mask,
        rule=pl.when(~ids_bucket)
        .then(pl.lit(RULE_C_TXID, RULE))
        .when(far)
        .then(pl.lit(RULE_A_DATE, RULE))
        .otherwise(pl.lit(RULE_A, RULE)),
    ).with_columns(
        status=pl.when(pl.col("mask") == 0)
        .then(pl.lit(Status.MATCHED.value, STATUS))
        .otherwise(pl.lit(Status.DIVERGENT.value, STATUS)),
    )
    if not eventful.is_empty():
        # A cancellation or an open chargeback is the status; divergences only for a divergent pair.
        at = eventful.get_column("at")
        changed = pl.col("event_status")
        after = pl.concat(
            [primaries.select("status", "mask")[at], eventful.select(changed)], how="horizontal"
        )
        after = after.select(
            status=pl.coalesce(changed, "status"),
            mask=pl.when(changed.is_null()).then("mask").otherwise(pl.lit(0, primaries.schema["mask"])),
        )
        primaries = primaries.with_columns(
            status=primaries.get_column("status").scatter(at, after.get_column("status")),
            mask=primaries.get_column("mask").scatter(at, after.get_column("mask")),
        )
    primaries = primaries.with_columns(divergences=divergences(pl.col("mask")))
    outcome = primaries.select("status", "divergences", pl.col("id").alias("counterpart_ids"), "rule")
    group = pl.col("first").cast(pl.UInt32).cum_sum() - 1
    rows_out = pl.concat(
        [
            kept.select(id="record_id", establishment_code="establishment_code"),
            outcome[kept.select(group).to_series()],
        ],
        how="horizontal",
    )
    event_rows = pl.concat(
        [
            events.select(id="record_id", establishment_code="establishment_code"),
            outcome[events.get_column("at")],
        ],
        how="horizontal",
    )
    rows_out = pl.concat([rows_out, event_rows], how="vertical").select(
        pl.lit(Kind.STATEMENT.value, KIND).alias("kind"), *RESULT_COLUMNS[1:]
    )
    # A receipt's counterparts: its one row, or its rows, then its events (each in place).
    several = (
        kept.select(pl.col("r_at").set_sorted(), "record_id", "first", "last")
        .filter(~(pl.col("first") & pl.col("last")))
        .drop("first", "last")
    )
    joined_ids = several.group_by("r_at", maintain_order=True).agg("record_id").get_column("record_id")
    ids = primaries.get_column("record_id").scatter(
        (~primaries.get_column("one_row")).arg_true(), joined_ids.list.join("|")
    )
    if not eventful.is_empty():
        ids = ids.scatter(at, ids.gather(at) + "|" + eventful.get_column("event_ids"))
    receipts_out = primaries.select(
        pl.lit(Kind.SALE.value, KIND).alias("kind"), *RESULT_COLUMNS[1:5], counterpart_ids=ids, rule="rule"
    )
    return receipts_out, rows_out, primaries.select("status", "mask")


def _business_day(receipts: pl.DataFrame, zone: tzinfo) -> pl.Expr:
    """The business day of each receipt's `sale_datetime`.

    By a table of UTC offsets, one per hour of the receipts' span, wherever the offset stays the
    same from the first to the last microsecond of every such hour (time zones change offset at
    most once in an hour); otherwise, or over a span of years, converted receipt by receipt."""
    moment = pl.col("sale_datetime")
    micros = moment.dt.epoch("us")
    low, high = receipts.select(low=micros.min(), high=micros.max()).row(0)
    offsets = _hourly_offsets(low, high, zone) if low is not None else None
    if offsets is not None:
        local = micros + pl.lit(offsets).gather(micros // _HOUR_US - low // _HOUR_US)
        return (local // _DAY_US).cast(pl.Int32).cast(pl.Date)
    if isinstance(zone, ZoneInfo):
        return moment.dt.convert_time_zone(zone.key).dt.date()
    return moment.map_elements(lambda at: at.astimezone(zone).date(), return_dtype=pl.Date)


_HOUR_US, _DAY_US = 3_600_000_000, 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Longest span, in hours, an offset table covers.
_TABLE_HOURS = 24 * 366 * 3


def _hourly_offsets(low: int, high: int, zone: tzinfo) -> pl.Series | None:
    """The UTC offset (µs) of `zone` in each hour from that of `low` to that of `high` (µs since
    the epoch), or None if it changes within one of those hours or the span is too long."""
    first, last = low // _HOUR_US, high // _HOUR_US
    if last - first >= _TABLE_HOURS:
        return None
    step, end = timedelta(hours=1), timedelta(hours=1, microseconds=-1)
    offsets = []
    try:
        at = _EPOCH + timedelta(hours=first)
        for _ in range(last - first + 1):
            offset = at.astimezone(zone).utcoffset()
            if offset is None or offset != (at + end).astimezone(zone).utcoffset():
                return None
            offsets.append(offset // timedelta(microseconds=1))
            at += step
    except OverflowError:  # an hour beyond `datetime`'s years
        return None
    return pl.Series(offsets, dtype=pl.Int64)
