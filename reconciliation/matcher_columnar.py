"""The pure matcher over polars frames: exactly `matcher.reconcile()`'s result, in a fraction of its time.

Input: a receipts frame and a retorno frame (`reconciliation.frames`); output: a `FrameResult`,
one row per record (the result CSV's columns and the establishment) and the counts of
`ReconResult.summary()`.

Three parts:
- The fast path: `matcher._Run.try_pair` on every bucket at once. A bucket holds the records of
  one establishment carrying both NSU and authorization code, by identifiers without leading zeros
  (rule a), or neither of them but a txid, by lower-cased txid (rule c). A bucket with exactly one
  receipt and retorno rows that are one plain sale (installment rows only, sharing every
  `_PLAIN_SALE_KEY` column, distinct installment numbers), both dated up to `as_of`, is a pair:
  primary row the lowest installment number, outcome as `_Run.emit_pair` computes it.
- The residue, every other record: vectorized where the Python matcher makes no choice between
  candidates (`reconciliation.matcher_residue`), by establishment.
- `reconcile()` itself on the residue of the establishments where it would choose.

Why this is exact: the Python matcher puts the same records in the same buckets, and a bucket the
fast path pairs never reaches its general path: `try_pair` succeeds, emits the pair and hands
nothing on (no duplicate can hide in it, no other record competes for its members, nothing is
left). Every other bucket is in the residue whole, with its duplicates, events and rule (a)
candidates, and so is every record outside buckets: `reconcile()` on the residue does exactly the
work the full run does on those records, because the full run's general path sees the same
records and `reconcile()` does not depend on the order of its input. Pairing, grouping and
duplicates never cross establishments, so the residue may be split by establishment. Counts add up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from reconciliation import matcher
from reconciliation.frames import (
    DIVERGENCE_BIT,
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
from reconciliation.matcher_residue import residue_outcomes
from reconciliation.records import Divergence, EventType, Kind, Status, business_tz
from reconciliation.window import DEFAULT_LOOKBACK_DAYS, window_start

# Columns of the rows and their receipt the fast path reads, once paired by bucket.
_ROW_COLUMNS = (
    "record_id",
    "establishment_code",
    "nsu",
    "authorization_code",
    "txid",
    "event_type",
    "sale_amount_cents",
    "sale_date",
    "installments",
    "acquirer",
    "brand",
    "payment_type",
)
_RECEIPT_COLUMNS = (
    "sale_id",
    "establishment_code",
    "nsu",
    "authorization_code",
    "txid",
    "amount_cents",
    "installments",
    "brand",
    "payment_type",
)


@dataclass(frozen=True, slots=True)
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
    _check_ids(receipts, "sale_id")
    _check_ids(statement_rows, "record_id")

    pairs = _fast_pairs(receipts, statement_rows, as_of, zone)
    firsts = pairs.filter(pl.col("first"))
    parts = [
        _receipt_outcomes(pairs),
        pairs.select(
            kind=pl.lit(Kind.STATEMENT.value, KIND),
            id="record_id",
            establishment_code="establishment_code",
            status="status",
            divergences="divergences",
            counterpart_ids="sale_id",
            rule="rule",
        ),
    ]
    left_receipts = _without(receipts, firsts["r_at"])
    left_rows = _without(statement_rows, pairs["s_at"])
    if isinstance(zone, ZoneInfo):
        residue = residue_outcomes(
            left_receipts, left_rows, as_of=as_of, lookback_days=lookback_days, zone=zone
        )
        parts.append(residue.frame)
        codes = pl.Series(list(residue.irregular), dtype=pl.String).implode()
        left_receipts = left_receipts.filter(pl.col("establishment_code").is_in(codes))
        left_rows = left_rows.filter(pl.col("establishment_code").is_in(codes))
    frame = pl.concat(parts, how="vertical")

    receipt_counts = dict.fromkeys(Status, 0)
    statement_counts = dict.fromkeys(Status, 0)
    for kind, status, n in frame.group_by("kind", "status").len().iter_rows():
        (receipt_counts if kind == Kind.SALE.value else statement_counts)[Status(status)] += n
    divergence_counts = dict.fromkeys(Divergence, 0)
    receipts_out = frame.filter(pl.col("kind") == Kind.SALE.value)
    for text, n in receipts_out.group_by("divergences").len().iter_rows():
        for divergence in text.split("|") if text else ():
            divergence_counts[Divergence(divergence)] += n
    pairs_count = receipts_out.filter(
        (pl.col("status") != Status.DUPLICATE.value) & (pl.col("counterpart_ids") != "")
    ).height

    python_records = left_receipts.height + left_rows.height
    if python_records:
        recs = receipt_records(left_receipts, zone)
        rows = statement_records(left_rows)
        rest = reconcile(recs, rows, as_of=as_of, lookback_days=lookback_days, tz=zone)
        frame = pl.concat([frame, result_frame(rest, recs, rows)], how="vertical")
        for status, n in rest.receipt_status_counts.items():
            receipt_counts[status] += n
        for status, n in rest.statement_status_counts.items():
            statement_counts[status] += n
        for divergence, n in rest.divergence_counts.items():
            divergence_counts[divergence] += n
        pairs_count += rest.pairs
    return FrameResult(
        as_of=as_of,
        lookback_days=lookback_days,
        frame=frame,
        receipt_status_counts=receipt_counts,
        statement_status_counts=statement_counts,
        divergence_counts=divergence_counts,
        pairs=pairs_count,
        python_records=python_records,
    )


def _check_ids(frame: pl.DataFrame, column: str) -> None:
    """The error `reconcile()` raises for ids repeated on one side."""
    ids = frame.get_column(column)
    if ids.n_unique() != ids.len():
        repeated = ids.filter(ids.is_duplicated()).unique().to_list()
        listed = ", ".join(sorted(repeated, key=id_sort_key)[:5])
        raise ValueError(f"{column} repetido: {listed}")


def _without(frame: pl.DataFrame, positions: pl.Series) -> pl.DataFrame:
    return frame.filter(~pl.int_range(pl.len(), dtype=pl.UInt32).is_in(positions.implode()))


def _keyed(frame: pl.DataFrame, column: str, strip: tuple[bool, bool]) -> pl.LazyFrame:
    """The records of `frame` that have a bucket: position `at`, `column` and the bucket's hash `h`.

    The hash only gathers the records of one bucket (identifiers without leading zeros: a value
    of zeros only hashes as '', a relabelling of `_ident`'s '0'); the pairs found are checked on
    the identifiers themselves, so a collision can only send buckets to the residue. `strip`
    says whether any NSU / authorization code of either side has leading zeros at all."""
    nsu, auth, txid = pl.col("nsu"), pl.col("authorization_code"), pl.col("txid")
    both = nsu.is_not_null() & auth.is_not_null()
    txid_only = nsu.is_null() & auth.is_null() & txid.is_not_null()
    first = pl.when(both).then(nsu.str.strip_chars_start("0") if strip[0] else nsu)
    second = auth.str.strip_chars_start("0") if strip[1] else auth
    h = (
        pl.col("establishment_code").hash(0)
        ^ first.otherwise(lowered(frame, "txid")).hash(1)
        ^ pl.when(both).then(second).hash(2)
    )
    return frame.lazy().with_row_index("at").filter(both | txid_only).select("at", column, h=h)


def _leading_zeros(receipts: pl.DataFrame, rows: pl.DataFrame) -> tuple[bool, bool]:
    """Whether any NSU, any authorization code of either frame starts with '0'."""
    found = [
        frame.select(pl.col("nsu", "authorization_code").str.starts_with("0").any())
        for frame in (receipts, rows)
    ]
    return (
        bool(found[0]["nsu"][0] or found[1]["nsu"][0]),
        bool(found[0]["authorization_code"][0] or found[1]["authorization_code"][0]),
    )


def _fast_pairs(receipts: pl.DataFrame, rows: pl.DataFrame, as_of: date, zone: tzinfo) -> pl.DataFrame:
    """The retorno rows of the buckets `try_pair` pairs, by receipt then installment number, each
    with its receipt, its outcome (`status`, `divergences`, `rule`), `first` on the primary row,
    and the positions `r_at` / `s_at` in the input frames."""
    day = _business_day(zone)
    strip = _leading_zeros(receipts, rows)
    singles, keyed_rows = pl.collect_all(
        [
            _keyed(receipts, "sale_datetime", strip)
            .filter(pl.col("h").is_unique())
            .select("h", r_at="at", r_day=day)
            .filter(pl.col("r_day") <= as_of),
            _keyed(rows, "installment_number", strip).select("h", s_at="at", number="installment_number"),
        ]
    )
    joined = keyed_rows.join(singles, on="h", how="inner")
    if joined.is_empty() or joined["number"].max() >= 1 << 32:  # type: ignore[operator]
        order: Any = ["r_at", "number"]
    else:
        order = pl.col("r_at").cast(pl.UInt64) * (1 << 32) + pl.col("number").cast(pl.UInt64)
    joined = joined.sort(order).select("r_at", "s_at", "number", "r_day")
    at_s, at_r = joined["s_at"], joined["r_at"]
    paired = pl.concat(
        [
            joined,
            rows.select(_ROW_COLUMNS)[at_s],
            receipts.select(_RECEIPT_COLUMNS)[at_r].rename(lambda c: f"r_{c}"),
        ],
        how="horizontal",
    )

    def same_as_before(column: str) -> pl.Expr:
        return pl.col(column) == pl.col(column).shift(1)

    first = (pl.col("r_at") != pl.col("r_at").shift(1)).fill_null(True)
    last = (pl.col("r_at") != pl.col("r_at").shift(-1)).fill_null(True)
    # The bucket checked on the raw identifiers (stricter than the bucket, never looser): the
    # rows then share NSU, authorization and txid too.
    row_ok = (
        (pl.col("establishment_code") == pl.col("r_establishment_code"))
        & pl.col("nsu").eq_missing(pl.col("r_nsu"))
        & pl.col("authorization_code").eq_missing(pl.col("r_authorization_code"))
        & pl.col("txid").eq_missing(pl.col("r_txid"))
        & (pl.col("event_type") == EventType.SALE.value)
        & (pl.col("sale_date") <= as_of)
        & (
            pl.col("first")
            | (
                same_as_before("sale_amount_cents")
                & same_as_before("sale_date")
                & same_as_before("installments")
                & same_as_before("acquirer")
                & ~same_as_before("number")
            )
        )
    )
    bad = (~pl.col("row_ok")).cast(pl.UInt32).cum_sum()
    checked = (
        paired.lazy()
        .with_columns(first=first, last=last)
        .with_columns(row_ok=row_ok)
        .with_columns(bad=bad)
        .with_columns(
            group_bad=pl.when(pl.col("last")).then(pl.col("bad")).backward_fill()
            > pl.when(pl.col("first"))
            .then(pl.col("bad") - (~pl.col("row_ok")).cast(pl.UInt32))
            .forward_fill()
        )
    )
    ids_bucket = pl.col("r_nsu").is_not_null()
    far = ids_bucket & ((pl.col("r_day") - pl.col("sale_date")).dt.total_days().abs() > 1)
    # Computed on the primary row (rows differ in brand and payment type only), then spread.
    mask = pl.when(pl.col("first")).then(
        pl.sum_horizontal(
            (pl.col("r_amount_cents") != pl.col("sale_amount_cents")).cast(pl.UInt8)
            * DIVERGENCE_BIT[Divergence.AMOUNT],
            (pl.col("r_installments") != pl.col("installments")).cast(pl.UInt8)
            * DIVERGENCE_BIT[Divergence.INSTALLMENTS],
            (pl.col("r_brand") != pl.col("brand")).cast(pl.UInt8) * DIVERGENCE_BIT[Divergence.BRAND],
            (pl.col("r_payment_type") != pl.col("payment_type")).cast(pl.UInt8)
            * DIVERGENCE_BIT[Divergence.PAYMENT_TYPE],
            far.cast(pl.UInt8) * DIVERGENCE_BIT[Divergence.DATE],
        )
    )
    return (
        checked.filter(~pl.col("group_bad"))
        .with_columns(mask=mask.forward_fill())
        .select(
            "first",
            "last",
            "r_at",
            "s_at",
            "record_id",
            "establishment_code",
            sale_id="r_sale_id",
            status=pl.when(pl.col("mask") == 0)
            .then(pl.lit(Status.MATCHED.value, STATUS))
            .otherwise(pl.lit(Status.DIVERGENT.value, STATUS)),
            divergences=divergences(pl.col("mask")),
            rule=pl.when(~ids_bucket)
            .then(pl.lit(RULE_C_TXID, RULE))
            .when(far)
            .then(pl.lit(RULE_A_DATE, RULE))
            .otherwise(pl.lit(RULE_A, RULE)),
        )
        .collect()
    )


def _business_day(zone: tzinfo) -> pl.Expr:
    moment = pl.col("sale_datetime")
    if isinstance(zone, ZoneInfo):
        return moment.dt.convert_time_zone(zone.key).dt.date()
    return moment.map_elements(lambda at: at.astimezone(zone).date(), return_dtype=pl.Date)


def _receipt_outcomes(pairs: pl.DataFrame) -> pl.DataFrame:
    """The receipts' outcomes of the fast pairs: counterparts are the rows by installment number."""
    one_row = pl.col("first") & pl.col("last")
    several = pairs.filter(~one_row)
    joined_ids = (
        several.select(pl.col("r_at").set_sorted(), "record_id")
        .group_by("r_at", maintain_order=True)
        .agg("record_id")
        .get_column("record_id")
        .list.join("|")
    )
    columns = (
        pl.lit(Kind.SALE.value, KIND).alias("kind"),
        pl.col("sale_id").alias("id"),
        "establishment_code",
        "status",
        "divergences",
    )
    return pl.concat(
        [
            pairs.filter(one_row).select(*columns, pl.col("record_id").alias("counterpart_ids"), "rule"),
            several.filter(pl.col("first")).select(*columns, counterpart_ids=joined_ids, rule="rule"),
        ],
        how="vertical",
    )


__all__ = ["RESULT_COLUMNS", "FrameResult", "reconcile_frames"]
