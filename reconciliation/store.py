"""Bulk moves between the reconciliation tables and the typed records of `reconciliation.records`.

PostgreSQL goes through COPY (imports into a temporary table then one `INSERT ... SELECT ... ON
CONFLICT DO NOTHING`, results straight into `recon_result`); SQLite through executemany with
`INSERT ... ON CONFLICT DO NOTHING`. Records are never loaded as ORM objects: rows become
`Receipt` / `StatementRow` through a constructor that skips re-validation, because only records
that passed it were ever stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, tzinfo
from enum import StrEnum
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from reconciliation import records
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


def _fetch_batches(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[str],
    codes: Sequence[str] | None,
    tz: tzinfo,
    stream: bool,
) -> Iterator[list[tuple]]:
    """Rows of `columns`, datetimes in `tz`, in batches."""
    if is_postgres(conn):
        driver = driver_connection(conn)
        with driver.cursor() as cur:
            cur.execute("SELECT set_config('TimeZone', %s, true)", (str(tz),))
        sql = f"SELECT {', '.join(columns)} FROM {table.name}"
        params: tuple = ()
        if codes is not None:
            sql += " WHERE establishment_code = ANY(%s)"
            params = (list(codes),)
        # A client-side cursor is faster (no round trip per batch) but holds the whole result in
        # libpq's memory: only for chunks known to be small.
        cursor = (
            driver.cursor(name=f"recon_fetch_{table.name}", binary=True)
            if stream
            else driver.cursor(binary=True)
        )
        with cursor as cur:
            if stream:
                cur.itersize = FETCH_BATCH
            cur.execute(sql, params)
            while batch := cur.fetchmany(FETCH_BATCH):
                yield batch
        return
    stmt = sa.select(*(table.c[name] for name in columns)).where(_where_codes(table, codes))
    result = conn.execute(stmt, execution_options={"yield_per": FETCH_BATCH})
    dt_positions = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, sa.TypeDecorator)]
    for partition in result.partitions():
        batch = []
        for row in partition:
            values = list(row)
            for i in dt_positions:
                if values[i] is not None:
                    values[i] = values[i].astimezone(tz)
            batch.append(tuple(values))
        yield batch


def load_receipts(
    conn: Connection, codes: Sequence[str] | None, tz: tzinfo, *, stream: bool = True
) -> list[records.Receipt]:
    make = records.receipt_maker()
    out: list[records.Receipt] = []
    for batch in _fetch_batches(conn, StoredReceipt.__table__, RECEIPT_FIELDS, codes, tz, stream):
        out.extend([make(row) for row in batch])
    return out


def load_statement_rows(
    conn: Connection, codes: Sequence[str] | None, tz: tzinfo, *, stream: bool = True
) -> list[records.StatementRow]:
    make = records.statement_row_maker()
    out: list[records.StatementRow] = []
    for batch in _fetch_batches(conn, StoredStatementRow.__table__, STATEMENT_FIELDS, codes, tz, stream):
        out.extend([make(row) for row in batch])
    return out


def receipt_from_values(values: Sequence[Any], tz: tzinfo) -> records.Receipt:
    """One stored receipt (values in RECEIPT_FIELDS order, as the ORM returns them) as a record."""
    data = dict(zip(RECEIPT_FIELDS, values, strict=True))
    data["sale_datetime"] = data["sale_datetime"].astimezone(tz)
    return records.Receipt(**data)


# --- results -----------------------------------------------------------------------------------

ResultTail = tuple[str, str, str, str]  # (status, divergences, counterpart_ids, rule)
ResultRow = tuple[str, str, str, ResultTail]  # (kind, record_key, establishment_code, tail)
# (kind, establishment_code, record keys, their tails): the new results of one establishment.
ResultBlock = tuple[str, str, list[str], list[ResultTail]]
RESULT_TAIL_COLUMNS = ("status", "divergences", "counterpart_ids", "rule")


def _copy_text(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def load_results(
    conn: Connection, codes: Sequence[str] | None, *, stream: bool = True
) -> dict[str, dict[str, ResultTail]]:
    """The stored results of the establishments, by kind then record key."""
    out: dict[str, dict[str, ResultTail]] = {k.value: {} for k in records.Kind}
    shared = records.Interner()
    columns = ("kind", "record_key", *RESULT_TAIL_COLUMNS)
    for batch in _fetch_batches(conn, Result.__table__, columns, codes, UTC, stream):
        for kind, key, status, divs, counterparts, rule in batch:
            out[shared[kind]][key] = (shared[status], shared[divs], counterparts, shared[rule])
    return out


def _tail_text(tail: ResultTail, run_id: int) -> str:
    status, divs, counterparts, rule = tail
    return f"{status}\t{_copy_text(divs)}\t{_copy_text(counterparts)}\t{_copy_text(rule)}\t{run_id}\n"


def _needs_escape(text: str) -> bool:
    return "\\" in text or "\t" in text or "\n" in text or "\r" in text


def _copy_lines(rows: Iterable[ResultRow], run_id: int) -> Iterator[str]:
    """COPY text for `RESULT_INSERT_COLUMNS`, one row at a time (the few updated rows)."""
    for batch in _batched(rows, 20_000):
        yield "".join(
            f"{kind}\t{_copy_text(key)}\t{_copy_text(est)}\t{_tail_text(tail, run_id)}"
            for kind, key, est, tail in batch
        )


def _block_text(block: ResultBlock, run_id: int) -> str:
    """COPY text of one block: kind and establishment formatted once, each shared tail once."""
    kind, code, keys, tails = block
    if _needs_escape("".join(keys)):
        keys = [_copy_text(k) for k in keys]
    head = f"{kind}\t"
    code_text = f"\t{_copy_text(code)}\t"
    # Keyed by id(): the block's list keeps every tail alive, so no id is reused meanwhile.
    texts: dict[int, str] = {}
    lines: list[str] = []
    append = lines.append
    for key, tail in zip(keys, tails, strict=True):
        text = texts.get(id(tail))
        if text is None:
            text = texts[id(tail)] = code_text + _tail_text(tail, run_id)
        append(head + key + text)
    return "".join(lines)


def _block_rows(blocks: Iterable[ResultBlock]) -> Iterator[ResultRow]:
    for kind, code, keys, tails in blocks:
        for key, tail in zip(keys, tails, strict=True):
            yield kind, key, code, tail


def _as_dicts(rows: Iterable[ResultRow], run_id: int) -> Iterator[dict[str, Any]]:
    for kind, key, est, (status, divs, counterparts, rule) in rows:
        yield {
            "kind": kind,
            "record_key": key,
            "establishment_code": est,
            "status": status,
            "divergences": divs,
            "counterpart_ids": counterparts,
            "rule": rule,
            "run_id": run_id,
        }


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def insert_results(conn: Connection, blocks: Iterable[ResultBlock], run_id: int) -> int:
    """Insert results for records that have none yet, given as blocks `(kind, establishment_code,
    record_keys, tails)`; streamed to PostgreSQL while the next blocks are computed."""
    count = 0
    if is_postgres(conn):
        driver = driver_connection(conn)
        columns = ", ".join(RESULT_INSERT_COLUMNS)
        with driver.cursor() as cur, cur.copy(f"COPY recon_result ({columns}) FROM STDIN") as copy:
            for block in blocks:
                if block[2]:
                    copy.write(_block_text(block, run_id))
                    count += len(block[2])
        return count
    stmt = sa.insert(Result.__table__)
    for batch in _batched(_as_dicts(_block_rows(blocks), run_id), SQLITE_BATCH):
        conn.execute(stmt, batch)
        count += len(batch)
    return count


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
