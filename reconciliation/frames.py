"""Records as polars frames, for the columnar matcher (`reconciliation.matcher_columnar`).

A receipts frame has the columns of `RECEIPT_SCHEMA`, a retorno frame those of
`STATEMENT_SCHEMA`, holding the canonical values a `Receipt` / `StatementRow` holds (enums as
their values); `sale_datetime` is an instant, which stands for the business time zone's wall
time (as the store loads receipts). A result frame has the columns of the result CSV (SPEC
section 8) and the establishment (`RESULT_SCHEMA`), divergences and counterpart ids `|`-joined.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from reconciliation.matcher import (
    RULE_A,
    RULE_A_DATE,
    RULE_B_AUTH,
    RULE_B_NSU,
    RULE_C_TIME,
    RULE_C_TXID,
    RULE_DUPLICATE,
    ReconResult,
)
from reconciliation.records import (
    Divergence,
    Kind,
    Receipt,
    StatementRow,
    Status,
    receipt_maker,
    statement_row_maker,
)

# The matchers' lazy queries are small and many: polars' streaming engine only adds to their cost.
IN_MEMORY = "in-memory"

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
# Divergences as bits, in declaration order (the output order): `DIVERGENCE_TEXT[mask]`.
DIVERGENCE_BIT = {d: 1 << k for k, d in enumerate(Divergence)}
DIVERGENCE_TEXT = [
    "|".join(d.value for d, bit in DIVERGENCE_BIT.items() if mask & bit)
    for mask in range(1 << len(Divergence))
]
KIND = pl.Enum([k.value for k in Kind])
STATUS = pl.Enum([s.value for s in Status])
DIVERGENCES = pl.Enum(DIVERGENCE_TEXT)
RULE = pl.Enum(["", RULE_A, RULE_A_DATE, RULE_B_NSU, RULE_B_AUTH, RULE_C_TXID, RULE_C_TIME, RULE_DUPLICATE])
RESULT_SCHEMA: dict[str, pl.DataType] = {
    "kind": KIND,
    "id": pl.String(),
    "establishment_code": pl.String(),
    "status": STATUS,
    "divergences": DIVERGENCES,
    "counterpart_ids": pl.String(),
    "rule": RULE,
}
RESULT_COLUMNS = tuple(RESULT_SCHEMA)


def receipts_frame(receipts: list[Receipt]) -> pl.DataFrame:
    """Receipts as a frame of `RECEIPT_SCHEMA`."""
    columns: dict[str, list[Any]] = {name: [getattr(r, name) for r in receipts] for name in RECEIPT_SCHEMA}
    for name in ("payment_type", "origin"):
        columns[name] = [v.value for v in columns[name]]
    return pl.DataFrame(columns, schema=RECEIPT_SCHEMA)


def statement_frame(rows: list[StatementRow]) -> pl.DataFrame:
    """Retorno rows as a frame of `STATEMENT_SCHEMA`."""
    columns: dict[str, list[Any]] = {name: [getattr(r, name) for r in rows] for name in STATEMENT_SCHEMA}
    for name in ("payment_type", "event_type"):
        columns[name] = [v.value for v in columns[name]]
    return pl.DataFrame(columns, schema=STATEMENT_SCHEMA)


def receipt_records(frame: pl.DataFrame, zone: tzinfo) -> list[Receipt]:
    """The receipts of a frame as records, `sale_datetime` in `zone` (as the store loads them)."""
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


def statement_records(frame: pl.DataFrame) -> list[StatementRow]:
    """The retorno rows of a frame as records."""
    make = statement_row_maker()
    return [make(values) for values in frame.select(list(STATEMENT_SCHEMA)).iter_rows()]


def result_frame(result: ReconResult, receipts: list[Receipt], rows: list[StatementRow]) -> pl.DataFrame:
    """The outcomes of `result` (of `reconcile(receipts, rows)`) as a frame of `RESULT_SCHEMA`."""
    columns: dict[str, list[str]] = {name: [] for name in RESULT_SCHEMA}
    kind, ids, est, status, divs, counterparts, rule = columns.values()
    # Outcomes are shared between records: format each once (keyed by id(), `result` keeps them).
    texts: dict[int, tuple[str, str, str, str]] = {}
    sides: tuple[tuple[Kind, list[Any], str], ...] = (
        (Kind.SALE, receipts, "sale_id"),
        (Kind.STATEMENT, rows, "record_id"),
    )
    for side, records, id_field in sides:
        outcomes = result.receipts if side is Kind.SALE else result.statement
        kind.extend([side.value] * len(records))
        for rec in records:
            record_id = getattr(rec, id_field)
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


def ident(column: str) -> pl.Expr:
    """`matcher._ident`: leading zeros dropped, '0' for an identifier of zeros only."""
    return pl.col(column).str.strip_chars_start("0").replace("", "0")


def lowered(frame: pl.DataFrame, column: str) -> pl.Expr:
    """`value.lower()` as Python computes it (polars' own lower-casing only for ASCII text)."""
    text = pl.col(column)
    values = frame.get_column(column).drop_nulls()
    other = values.filter(values.str.len_bytes() != values.str.len_chars()).unique()
    if other.is_empty():
        return text.str.to_lowercase()
    mapping = {value: value.lower() for value in other.to_list()}
    return pl.when(text.is_in(other.implode())).then(text.replace(mapping)).otherwise(text.str.to_lowercase())


def divergences(mask: pl.Expr) -> pl.Expr:
    """The divergences whose bits (`DIVERGENCE_BIT`) are set."""
    return mask.cast(pl.UInt8).cat.to(DIVERGENCES)  # type: ignore[attr-defined]
