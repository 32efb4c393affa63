"""The pure matcher over polars DataFrames: the same result as `matcher.reconcile()`, faster.

Input: a frame of receipts (`RECEIPT_SCHEMA`) and a frame of retorno rows (`STATEMENT_SCHEMA`),
with the canonical values a `Receipt` / `StatementRow` holds (enums as their values,
`sale_datetime` time-zone aware). Output: a `FrameResult`, one row per record with the columns of
the result CSV (SPEC section 8) and the establishment, and the counts of `ReconResult.summary()`.

How: the common bucket is paired with vector operations, the rest goes through `reconcile()`.

- The fast path is `matcher._Run.try_pair` on every bucket at once. A bucket holds the records of
  one establishment carrying both NSU and authorization code, by identifiers without leading
  zeros (rule a), or neither of them but a txid, by lower-cased txid (rule c). A bucket with
  exactly one receipt and retorno rows that are one plain sale (installment rows only, sharing
  every `_PLAIN_SALE_KEY` column, distinct installment numbers), both dated up to `as_of`, is a
  pair: primary row the lowest installment number, outcome as `_Run.emit_pair` computes it.
- The residue (every other bucket, and the records in no bucket) goes through `reconcile()`.

Why this is exact: the Python matcher puts the same records in the same buckets, and such a
bucket never reaches its general path: `try_pair` succeeds, emits the pair and hands nothing on
(no duplicate can hide in it, no other record competes for its members, nothing is left). A
bucket is in the residue whole, with its duplicates, events and rule (a) candidates, and every
record outside buckets is there too, so `reconcile()` on the residue does exactly the work the
full run does on those records: the full run's general path sees the same records, and
`reconcile()` does not depend on the order of its input. Counts add up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from reconciliation import matcher
from reconciliation.matcher import RULE_A, RULE_A_DATE, RULE_C_TXID, ReconResult, id_sort_key, reconcile
from reconciliation.matcher_residue import DIVERGENCE_TEXT, ident, lowered, residue_outcomes
from reconciliation.records import (
    Divergence,
    EventType,
    Kind,
    Receipt,
    StatementRow,
    Status,
    business_tz,
    receipt_maker,
    statement_row_maker,
)
from reconciliation.window import DEFAULT_LOOKBACK_DAYS, window_start

RECEIPT_SCHEMA: dict[str, pl.DataType] = {
    "sale_id": pl.String(),
    "establishment_code": pl.String(),
    "sale_datetime": pl.Datetime("us", "UTC"),
    "amount_cents": pl.Int64(),
    "payment_type": pl.String(),
    "brand": pl.String(),
    "acquirer": pl.String(),
    "installments": pl.Int64(),
    "authorization_code": pl.String(),
    "nsu": pl.String(),
    "origin": pl.String(),
    "tid": pl.String(),
    "txid": pl.String(),
    "terminal": pl.String(),
    "cnpj": pl.String(),
    "corrected_on": pl.Date(),
}
STATEMENT_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "establishment_code": pl.String(),
    "acquirer": pl.String(),
    "brand": pl.String(),
    "payment_type": pl.String(),
    "sale_date": pl.Date(),
    "sale_time": pl.Time(),
    "authorization_code": pl.String(),
    "nsu": pl.String(),
    "tid": pl.String(),
    "txid": pl.String(),
    "installments": pl.Int64(),
    "installment_number": pl.Int64(),
    "sale_amount_cents": pl.Int64(),
    "gross_amount_cents": pl.Int64(),
    "fee_amount_cents": pl.Int64(),
    "net_amount_cents": pl.Int64(),
    "expected_payment_date": pl.Date(),
    "event_type": pl.String(),
}
# One row per record: the result CSV's columns (divergences and counterpart ids `|`-joined) and
# the establishment.
RESULT_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "id": pl.String(),
    "establishment_code": pl.String(),
    "status": pl.String(),
    "divergences": pl.String(),
    "counterpart_ids": pl.String(),
    "rule": pl.String(),
}
# The columns a plain sale's rows share (`matcher._PLAIN_SALE_KEY`).
_PLAIN_SALE_COLUMNS = (
    "event_type",
    "sale_amount_cents",
    "sale_date",
    "installments",
    "acquirer",
    "nsu",
    "authorization_code",
    "txid",
)
_IDS_BUCKET, _TXID_BUCKET = 0, 1


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Outcome of every record as a frame (`RESULT_SCHEMA`, no significant row order) and the
    counts of `ReconResult`."""

    as_of: date
    lookback_days: int
    frame: pl.DataFrame
    receipt_status_counts: Mapping[Status, int]
    statement_status_counts: Mapping[Status, int]
    divergence_counts: Mapping[Divergence, int]
    pairs: int
    # How many records went through `reconcile()` (irregular establishments' residue).
    python_records: int = 0

    def summary(self) -> dict[str, Any]:
        """The same JSON-ready counts as `ReconResult.summary()`."""
        return matcher.summary_of(self)


# --- records <-> frames --------------------------------------------------------------------------


def receipts_frame(receipts: list[Receipt]) -> pl.DataFrame:
    """Receipts as a frame of `RECEIPT_SCHEMA`."""
    columns: dict[str, list[Any]] = {name: [] for name in RECEIPT_SCHEMA}
    for name, values in columns.items():
        values.extend(getattr(r, name) for r in receipts)
    for name in ("payment_type", "origin"):
        columns[name] = [v.value for v in columns[name]]
    return pl.DataFrame(columns, schema=RECEIPT_SCHEMA)


def statement_frame(rows: list[StatementRow]) -> pl.DataFrame:
    """Retorno rows as a frame of `STATEMENT_SCHEMA`."""
    columns: dict[str, list[Any]] = {name: [] for name in STATEMENT_SCHEMA}
    for name, values in columns.items():
        values.extend(getattr(r, name) for r in rows)
    for name in ("payment_type", "event_type"):
        columns[name] = [v.value for v in columns[name]]
    return pl.DataFrame(columns, schema=STATEMENT_SCHEMA)


def _receipt_records(frame: pl.DataFrame, zone: tzinfo) -> list[Receipt]:
    make = receipt_maker()
    table = frame.select(list(RECEIPT_SCHEMA))
    if isinstance(zone, ZoneInfo):
        table = table.with_columns(pl.col("sale_datetime").dt.convert_time_zone(zone.key))
        return [make(values) for values in table.iter_rows()]
    at = list(RECEIPT_SCHEMA).index("sale_datetime")
    out = []
    for values in table.iter_rows():
        fixed = list(values)
        fixed[at] = fixed[at].astimezone(zone)
        out.append(make(fixed))
    return out


def _statement_records(frame: pl.DataFrame) -> list[StatementRow]:
    make = statement_row_maker()
    return [make(values) for values in frame.select(list(STATEMENT_SCHEMA)).iter_rows()]


def result_frame(result: ReconResult, receipts: list[Receipt], rows: list[StatementRow]) -> pl.DataFrame:
    """The outcomes of `result` (of `reconcile(receipts, rows)`) as a frame of `RESULT_SCHEMA`."""
    columns: dict[str, list[str]] = {name: [] for name in RESULT_SCHEMA}
    kind, ids, est, status, divs, counterparts, rule = columns.values()
    # Outcomes are shared between records: format each once (keyed by id(), `result` keeps them).
    texts: dict[int, tuple[str, str, str, str]] = {}
    for side, records, get_id in (
        (Kind.SALE, receipts, _sale_id),
        (Kind.STATEMENT, rows, _record_id),
    ):
        outcomes = result.receipts if side is Kind.SALE else result.statement
        kind.extend([side.value] * len(records))
        for rec in records:
            record_id = get_id(rec)
            outcome = outcomes[record_id]
            text = texts.get(id(outcome))
            if text is None:
                o_status, o_divs, o_counterparts, o_rule = outcome
                text = texts[id(outcome)] = (
                    o_status.value,
                    "|".join(o_divs),
                    "|".join(o_counterparts),
                    o_rule,
                )
            ids.append(record_id)
            est.append(rec.establishment_code)
            status.append(text[0])
            divs.append(text[1])
            counterparts.append(text[2])
            rule.append(text[3])
    return pl.DataFrame(columns, schema=RESULT_SCHEMA)


def _sale_id(rec: Receipt) -> str:
    return rec.sale_id


def _record_id(rec: StatementRow) -> str:
    return rec.record_id


# --- the matcher ---------------------------------------------------------------------------------


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
        firsts.select(
            kind=pl.lit(Kind.SALE.value),
            id=pl.col("sale_id"),
            establishment_code=pl.col("establishment_code"),
            status=pl.col("status"),
            divergences=pl.col("divergences"),
            counterpart_ids=_counterparts(pairs),
            rule=pl.col("rule"),
        ),
        pairs.select(
            kind=pl.lit(Kind.STATEMENT.value),
            id=pl.col("record_id"),
            establishment_code=pl.col("establishment_code"),
            status=pl.col("status"),
            divergences=pl.col("divergences"),
            counterpart_ids=pl.col("sale_id"),
            rule=pl.col("rule"),
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
    vector = pl.concat(parts, how="vertical")

    receipt_counts = dict.fromkeys(Status, 0)
    statement_counts = dict.fromkeys(Status, 0)
    for kind, status, n in vector.group_by("kind", "status").len().iter_rows():
        counts = receipt_counts if kind == Kind.SALE.value else statement_counts
        counts[Status(status)] += n
    divergence_counts = dict.fromkeys(Divergence, 0)
    receipts_out = vector.filter(pl.col("kind") == Kind.SALE.value)
    for text, n in receipts_out.group_by("divergences").len().iter_rows():
        for divergence in text.split("|") if text else ():
            divergence_counts[Divergence(divergence)] += n
    pairs_count = receipts_out.filter(
        (pl.col("status") != Status.DUPLICATE.value) & (pl.col("counterpart_ids") != "")
    ).height

    python_records = left_receipts.height + left_rows.height
    if python_records:
        recs = _receipt_records(left_receipts, zone)
        rows = _statement_records(left_rows)
        rest = reconcile(recs, rows, as_of=as_of, lookback_days=lookback_days, tz=zone)
        vector = pl.concat([vector, result_frame(rest, recs, rows)], how="vertical")
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
        frame=vector,
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


def _bucketed(frame: pl.DataFrame, columns: list[str | pl.Expr]) -> pl.DataFrame:
    """The records of `frame` that have a bucket, with their position `at`, the bucket's key
    (`bucket`, `b1`, `b2` beside the establishment) and its hash `h`."""
    nsu, auth, txid = pl.col("nsu"), pl.col("authorization_code"), pl.col("txid")
    both = nsu.is_not_null() & auth.is_not_null()
    txid_only = nsu.is_null() & auth.is_null() & txid.is_not_null()
    keyed = frame.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("at"),
        pl.when(both)
        .then(pl.lit(_IDS_BUCKET, pl.Int8))
        .when(txid_only)
        .then(pl.lit(_TXID_BUCKET, pl.Int8))
        .alias("bucket"),
        pl.when(both).then(ident("nsu")).when(txid_only).then(lowered(frame, "txid")).alias("b1"),
        pl.when(both).then(ident("authorization_code")).alias("b2"),
        *columns,
    ).filter(pl.col("bucket").is_not_null())
    return keyed.with_columns(h=pl.struct("bucket", "establishment_code", "b1", "b2").hash())


def _business_day(zone: tzinfo) -> pl.Expr:
    moment = pl.col("sale_datetime")
    if isinstance(zone, ZoneInfo):
        return moment.dt.convert_time_zone(zone.key).dt.date()
    return moment.map_elements(lambda at: at.astimezone(zone).date(), return_dtype=pl.Date)


def _fast_pairs(receipts: pl.DataFrame, rows: pl.DataFrame, as_of: date, zone: tzinfo) -> pl.DataFrame:
    """The retorno rows of the buckets `try_pair` pairs, by bucket and installment number, each
    with its receipt, its outcome (`status`, `divergences`, `rule`, divergence bits `mask`),
    `first` on the primary row, and the positions `r_at` / `s_at` in the input frames."""
    r = _bucketed(
        receipts,
        [
            "establishment_code",
            "sale_id",
            "amount_cents",
            "installments",
            "brand",
            "payment_type",
            _business_day(zone).alias("r_day"),
        ],
    )
    # The hash stands for the key: a bucket whose rows' key is not their receipt's (a collision)
    # is left to the residue, whole.
    single = r.filter(pl.col("h").is_unique() & (pl.col("r_day") <= as_of)).select(
        "h",
        pl.col("at").alias("r_at"),
        pl.col("bucket").alias("r_bucket"),
        pl.col("establishment_code").alias("r_est"),
        pl.col("b1").alias("r_b1"),
        pl.col("b2").alias("r_b2"),
        "sale_id",
        pl.col("amount_cents").alias("r_amount"),
        pl.col("installments").alias("r_installments"),
        pl.col("brand").alias("r_brand"),
        pl.col("payment_type").alias("r_payment_type"),
        "r_day",
    )
    s = _bucketed(
        rows,
        [
            "record_id",
            "establishment_code",
            "brand",
            "payment_type",
            *_PLAIN_SALE_COLUMNS,
            "installment_number",
        ],
    )
    joined = s.join(single, on="h", how="inner").sort("h", "installment_number")

    first = pl.col("h") != pl.col("h").shift(1)
    same_sale = pl.all_horizontal(
        *(pl.col(c).eq_missing(pl.col(c).shift(1)) for c in _PLAIN_SALE_COLUMNS),
        pl.col("installment_number") != pl.col("installment_number").shift(1),
    )
    row_ok = (
        (pl.col("bucket") == pl.col("r_bucket"))
        & (pl.col("establishment_code") == pl.col("r_est"))
        & (pl.col("b1") == pl.col("r_b1"))
        & pl.col("b2").eq_missing(pl.col("r_b2"))
        & (pl.col("event_type") == EventType.SALE.value)
        & (pl.col("sale_date") <= as_of)
        & (pl.col("first") | same_sale)
    )
    checked = joined.with_columns(first=first.fill_null(True)).with_columns(
        group=pl.col("first").cum_sum(), ok=row_ok
    )
    pairs = checked.filter(pl.col("ok").all().over("group"))

    def primary(column: str) -> pl.Expr:
        return pl.when(pl.col("first")).then(pl.col(column)).forward_fill()

    far = (pl.col("bucket") == _IDS_BUCKET) & (
        (pl.col("r_day") - pl.col("sale_date")).dt.total_days().abs() > 1
    )
    mask = (
        (pl.col("r_amount") != pl.col("sale_amount_cents")).cast(pl.Int32)
        | (pl.col("r_installments") != pl.col("installments")).cast(pl.Int32) * 2
        | (pl.col("r_brand") != primary("brand")).cast(pl.Int32) * 4
        | (pl.col("r_payment_type") != primary("payment_type")).cast(pl.Int32) * 8
        | far.cast(pl.Int32) * 64
    )
    return pairs.with_columns(mask=mask, s_at=pl.col("at")).with_columns(
        status=pl.when(pl.col("mask") == 0)
        .then(pl.lit(Status.MATCHED.value))
        .otherwise(pl.lit(Status.DIVERGENT.value)),
        divergences=pl.col("mask").replace_strict(
            list(range(len(DIVERGENCE_TEXT))), DIVERGENCE_TEXT, return_dtype=pl.String
        ),
        rule=pl.when(pl.col("bucket") == _TXID_BUCKET)
        .then(pl.lit(RULE_C_TXID))
        .when(far)
        .then(pl.lit(RULE_A_DATE))
        .otherwise(pl.lit(RULE_A)),
    )


def _counterparts(pairs: pl.DataFrame) -> pl.Series:
    """Per pair, in the order of `pairs`' primary rows: its record ids by installment number."""
    return pairs.group_by("group", maintain_order=True).agg(pl.col("record_id").str.join("|"))["record_id"]
