"""Bulk moves between the reconciliation tables and typed records or polars frames.

PostgreSQL goes through COPY (imports into a temporary table then one `INSERT ... SELECT ... ON
CONFLICT DO NOTHING`; stored records and results read as CSV into frames of
`reconciliation.frames`; results written straight into `recon_result`); SQLite through
SQLAlchemy and executemany with `INSERT ... ON CONFLICT DO NOTHING`. Records are never loaded as
ORM objects.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, tzinfo
from enum import StrEnum
from operator import attrgetter
from typing import Any

import polars as pl
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from reconciliation import frames, records
from reconciliation.models import Result, StoredReceipt, StoredStatementRow

RECEIPT_FIELDS = tuple(f.name for f in dataclasses.fields(records.Receipt))
STATEMENT_FIELDS = tuple(f.name for f in dataclasses.fields(records.StatementRow))
RECEIPT_INSERT_COLUMNS = (*RECEIPT_FIELDS, "sale_date", "resend_pending", "batch_id", "line_no")
STATEMENT_INSERT_COLUMNS = (*STATEMENT_FIELDS, "batch_id", "line_no")
RESULT_INSERT_COLUMNS = (
    "kind",
    "record_key",
    "establishment_code",
    "status",
    "divergences",
    "counterpart_ids",
    "rule",
    "run_id",
)

FETCH_BATCH = 20_000
SQLITE_BATCH = 5_000
COPY_BATCH = 100_000


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def driver_connection(conn: Connection) -> Any:
    """The psycopg / sqlite3 connection under a SQLAlchemy connection (same transaction)."""
    return conn.connection.driver_connection


# --- records -> rows ---------------------------------------------------------------------------


def plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


_RECEIPT_VALUES = attrgetter(*RECEIPT_FIELDS)
_STATEMENT_VALUES = attrgetter(*STATEMENT_FIELDS)
# Enum fields are stored as their value (psycopg would write an Enum's name).
_RECEIPT_ENUMS = tuple(RECEIPT_FIELDS.index(name) for name in ("payment_type", "origin"))
_STATEMENT_ENUMS = tuple(STATEMENT_FIELDS.index(name) for name in ("payment_type", "event_type"))


def receipt_row(rec: records.Receipt, tz: tzinfo, batch_id: int | None, line_no: int | None) -> list[Any]:
    """The values of RECEIPT_INSERT_COLUMNS for one receipt."""
    values = list(_RECEIPT_VALUES(rec))
    for i in _RECEIPT_ENUMS:
        values[i] = values[i].value
    values += (rec.local_date(tz), False, batch_id, line_no)
    return values


def statement_row(rec: records.StatementRow, batch_id: int | None, line_no: int | None) -> list[Any]:
    """The values of STATEMENT_INSERT_COLUMNS for one retorno row."""
    values = list(_STATEMENT_VALUES(rec))
    for i in _STATEMENT_ENUMS:
        values[i] = values[i].value
    values += (batch_id, line_no)
    return values


# --- insert-or-ignore --------------------------------------------------------------------------


class InsertOrIgnore:
    """Streams rows into `table`, skipping rows whose unique key is already stored (or came
    earlier in the same stream); `finish()` returns how many were inserted."""

    def __init__(self, conn: Connection, table: sa.Table, columns: Sequence[str]) -> None:
        self.conn = conn
        self.table = table
        self.columns = tuple(columns)
        self.inserted = 0
        self._pending: list[dict[str, Any]] = []
        self._pg = is_postgres(conn)
        if self._pg:
            self._tmp = f"tmp_{table.name}"
            driver = driver_connection(conn)
            col_list = ", ".join(self.columns)
            with driver.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {self._tmp}")
                cur.execute(
                    f"CREATE TEMP TABLE {self._tmp} ON COMMIT DROP AS "
                    f"SELECT {col_list}, 0::bigint AS seq FROM {table.name} WITH NO DATA"
                )
            self._cursor = driver.cursor()
            self._copy_cm = self._cursor.copy(f"COPY {self._tmp} ({col_list}, seq) FROM STDIN")
            self._copy = self._copy_cm.__enter__()
            self._seq = 0
        else:
            self._stmt = sqlite.insert(table).on_conflict_do_nothing()

    def add(self, row: tuple) -> None:
        if self._pg:
            self._seq += 1
            self._copy.write_row((*row, self._seq))
            return
        self._pending.append(dict(zip(self.columns, row, strict=True)))
        if len(self._pending) >= SQLITE_BATCH:
            self._flush_sqlite()

    def _flush_sqlite(self) -> None:
        if self._pending:
            result = self.conn.execute(self._stmt, self._pending)
            self.inserted += max(result.rowcount, 0)
            self._pending = []

    def finish(self) -> int:
        if not self._pg:
            self._flush_sqlite()
            return self.inserted
        self._copy_cm.__exit__(None, None, None)
        col_list = ", ".join(self.columns)
        # Ordered by position in the stream, so that of two rows with one id the first is kept.
        self._cursor.execute(
            f"INSERT INTO {self.table.name} ({col_list}) "
            f"SELECT {col_list} FROM {self._tmp} ORDER BY seq ON CONFLICT DO NOTHING"
        )
        self.inserted = max(self._cursor.rowcount, 0)
        self._cursor.execute(f"DROP TABLE {self._tmp}")
        self._cursor.close()
        return self.inserted

    def abort(self) -> None:
        if self._pg:
            # The transaction is rolled back by the caller anyway.
            with contextlib.suppress(Exception):
                self._copy_cm.__exit__(RuntimeError, RuntimeError("aborted"), None)
            self._cursor.close()


# --- rows -> records ---------------------------------------------------------------------------


def _where_codes(table: sa.Table, codes: Sequence[str] | None) -> Any:
    return table.c.establishment_code.in_(list(codes)) if codes is not None else sa.true()


def _sqlite_rows(
    conn: Connection, table: sa.Table, columns: Sequence[str], codes: Sequence[str] | None, tz: tzinfo
) -> list[tuple[Any, ...]]:
    """Rows of `columns` through SQLAlchemy (SQLite), datetimes in `tz`."""
    stmt = sa.select(*(table.c[name] for name in columns)).where(_where_codes(table, codes))
    dt_positions = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, sa.TypeDecorator)]
    out = []
    for row in conn.execute(stmt):
        values = list(row)
        for i in dt_positions:
            if values[i] is not None:
                values[i] = values[i].astimezone(tz)
        out.append(tuple(values))
    return out


def _frame_query(
    table: sa.Table, schema: dict[str, pl.DataType], codes: Sequence[str] | None
) -> sql.Composed:
    """`SELECT` of the columns of `schema`, datetimes and times as microseconds and dates as days
    since the epoch (exact, whatever the session's settings), for `COPY ... TO STDOUT`."""
    columns = []
    for name, dtype in schema.items():
        column = sql.Identifier(name)
        if isinstance(dtype, pl.Datetime | pl.Time):
            columns.append(sql.SQL("(extract(epoch from {c}) * 1000000)::bigint").format(c=column))
        elif isinstance(dtype, pl.Date):
            columns.append(sql.SQL("({c} - DATE '1970-01-01')").format(c=column))
        else:
            columns.append(column)
    query = sql.SQL("SELECT {columns} FROM {table}").format(
        columns=sql.SQL(", ").join(columns), table=sql.Identifier(table.name)
    )
    if codes is not None:
        query += sql.SQL(" WHERE establishment_code = ANY({codes})").format(codes=sql.Literal(list(codes)))
    return query


def _as_read(schema: dict[str, pl.DataType]) -> dict[str, pl.DataType]:
    """The schema of `_frame_query`'s CSV: datetimes, times and dates as integers."""
    return {
        name: pl.Int64()
        if isinstance(dtype, pl.Datetime | pl.Time)
        else pl.Int32()
        if isinstance(dtype, pl.Date)
        else dtype
        for name, dtype in schema.items()
    }


def _load_frame(
    conn: Connection,
    table: sa.Table,
    schema: dict[str, pl.DataType],
    codes: Sequence[str] | None,
    tz: tzinfo,
) -> pl.DataFrame:
    """The rows of `table` (of the establishments `codes`, all if None) as a frame of `schema`."""
    if not is_postgres(conn):
        return pl.DataFrame(_sqlite_rows(conn, table, list(schema), codes, tz), schema=schema, orient="row")
    query = sql.SQL("COPY ({query}) TO STDOUT WITH (FORMAT csv)").format(
        query=_frame_query(table, schema, codes)
    )
    buffer = io.BytesIO()
    with driver_connection(conn).cursor() as cur, cur.copy(query) as copy:
        for data in copy:
            buffer.write(data)
    if not buffer.tell():
        return pl.DataFrame(schema=schema)
    buffer.seek(0)
    frame = pl.read_csv(buffer, has_header=False, new_columns=list(schema), schema=_as_read(schema))
    times = [
        pl.col(name).cast(pl.Int64) * 1000 if isinstance(dtype, pl.Time) else pl.col(name)
        for name, dtype in schema.items()
    ]
    return frame.select(times).cast(schema)  # type: ignore[arg-type]


def load_receipt_frame(conn: Connection, codes: Sequence[str] | None, tz: tzinfo) -> pl.DataFrame:
    """The stored receipts of the establishments `codes` (all if None), `frames.RECEIPT_SCHEMA`."""
    return _load_frame(conn, StoredReceipt.__table__, frames.RECEIPT_SCHEMA, codes, tz)


def load_statement_frame(conn: Connection, codes: Sequence[str] | None, tz: tzinfo) -> pl.DataFrame:
    """The stored retorno rows of the establishments `codes`, `frames.STATEMENT_SCHEMA`."""
    return _load_frame(conn, StoredStatementRow.__table__, frames.STATEMENT_SCHEMA, codes, tz)


def receipt_from_values(values: Sequence[Any], tz: tzinfo) -> records.Receipt:
    """One stored receipt (values in RECEIPT_FIELDS order, as the ORM returns them) as a record."""
    data = dict(zip(RECEIPT_FIELDS, values, strict=True))
    data["sale_datetime"] = data["sale_datetime"].astimezone(tz)
    return records.Receipt(**data)


# --- results -----------------------------------------------------------------------------------

ResultTail = tuple[str, str, str, str]  # (status, divergences, counterpart_ids, rule)
ResultRow = tuple[str, str, str, ResultTail]  # (kind, record_key, establishment_code, tail)
RESULT_TAIL_COLUMNS = ("status", "divergences", "counterpart_ids", "rule")
# Stored results as a frame: `frames.RESULT_SCHEMA` with `id` named `record_key`, text columns.
RESULT_FRAME_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "record_key": pl.String(),
    "establishment_code": pl.String(),
    **{name: pl.String() for name in RESULT_TAIL_COLUMNS},
}


def _copy_text(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def load_result_frame(conn: Connection, codes: Sequence[str] | None) -> pl.DataFrame:
    """The stored results of the establishments `codes` (all if None), `RESULT_FRAME_SCHEMA`."""
    return _load_frame(conn, Result.__table__, RESULT_FRAME_SCHEMA, codes, UTC)


def _tail_text(tail: ResultTail, run_id: int) -> str:
    status, divs, counterparts, rule = tail
    return f"{status}\t{_copy_text(divs)}\t{_copy_text(counterparts)}\t{_copy_text(rule)}\t{run_id}\n"


def _copy_lines(rows: Iterable[ResultRow], run_id: int) -> Iterator[str]:
    """COPY text for `RESULT_INSERT_COLUMNS`, one row at a time (the few updated rows)."""
    for batch in _batched(rows, 20_000):
        yield "".join(
            f"{kind}\t{_copy_text(key)}\t{_copy_text(est)}\t{_tail_text(tail, run_id)}"
            for kind, key, est, tail in batch
        )


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def insert_result_frame(conn: Connection, results: pl.DataFrame, run_id: int) -> int:
    """Insert results for records that have none yet: a frame of `RESULT_FRAME_SCHEMA`'s columns."""
    table = results.select(list(RESULT_FRAME_SCHEMA)).with_columns(run_id=pl.lit(run_id))
    if table.is_empty():
        return 0
    if is_postgres(conn):
        columns = ", ".join(RESULT_INSERT_COLUMNS)
        # The text columns are never NULL: an empty field is an empty string.
        not_null = ", ".join(RESULT_TAIL_COLUMNS)
        copy_sql = f"COPY recon_result ({columns}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL ({not_null}))"
        with driver_connection(conn).cursor() as cur, cur.copy(copy_sql) as copy:
            for start in range(0, table.height, COPY_BATCH):
                copy.write(table.slice(start, COPY_BATCH).write_csv(include_header=False))
        return table.height
    stmt = sa.insert(Result.__table__)
    names = list(table.columns)
    for start in range(0, table.height, SQLITE_BATCH):
        batch = table.slice(start, SQLITE_BATCH)
        conn.execute(stmt, [dict(zip(names, row, strict=True)) for row in batch.iter_rows()])
    return table.height


def update_results(conn: Connection, rows: Sequence[ResultRow], run_id: int) -> int:
    """Overwrite the stored results of these records."""
    if not rows:
        return 0
    table = Result.__table__
    if is_postgres(conn):
        driver = driver_connection(conn)
        columns = ", ".join(RESULT_INSERT_COLUMNS)
        with driver.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE tmp_recon_result ON COMMIT DROP AS SELECT {columns} "
                "FROM recon_result WITH NO DATA"
            )
            with cur.copy(f"COPY tmp_recon_result ({columns}) FROM STDIN") as copy:
                for chunk in _copy_lines(rows, run_id):
                    copy.write(chunk)
            sets = ", ".join(f"{c} = t.{c}" for c in (*RESULT_TAIL_COLUMNS, "run_id"))
            cur.execute(
                f"UPDATE recon_result r SET {sets} FROM tmp_recon_result t "
                "WHERE r.kind = t.kind AND r.record_key = t.record_key"
            )
            cur.execute("DROP TABLE tmp_recon_result")
        return len(rows)
    stmt = (
        sa.update(table)
        .where(table.c.kind == sa.bindparam("b_kind"), table.c.record_key == sa.bindparam("b_key"))
        .values(
            status=sa.bindparam("b_status"),
            divergences=sa.bindparam("b_divs"),
            counterpart_ids=sa.bindparam("b_counterparts"),
            rule=sa.bindparam("b_rule"),
            run_id=sa.bindparam("b_run"),
        )
    )
    for batch in _batched(rows, SQLITE_BATCH):
        conn.execute(
            stmt,
            [
                {
                    "b_kind": kind,
                    "b_key": key,
                    "b_status": status,
                    "b_divs": divs,
                    "b_counterparts": counterparts,
                    "b_rule": rule,
                    "b_run": run_id,
                }
                for kind, key, _est, (status, divs, counterparts, rule) in batch
            ],
        )
    return len(rows)


def delete_results(conn: Connection, keys: Iterable[tuple[str, str]]) -> int:
    """Remove the results of records that are no longer there."""
    table = Result.__table__
    stmt = sa.delete(table).where(
        table.c.kind == sa.bindparam("b_kind"), table.c.record_key == sa.bindparam("b_key")
    )
    count = 0
    for batch in _batched(({"b_kind": k, "b_key": r} for k, r in keys), SQLITE_BATCH):
        conn.execute(stmt, batch)
        count += len(batch)
    return count
