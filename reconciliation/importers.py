"""Imports of ERP receipts and integrator retornos into the database, streamed and idempotent.

A file goes through the core readers row by row into the database in bulk (COPY on PostgreSQL,
executemany on SQLite), never held whole in memory. Good rows are kept, each bad row is reported
with its line number and reason, a row whose id is already stored is ignored (not an error), and
a file already imported (same sha256) adds nothing. The caller commits: one file is one
transaction, so a file that cannot be finished changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from onboarding.db import utcnow
from onboarding.errors import InvalidInput
from onboarding.models import User
from reconciliation import csvformat, records, store
from reconciliation.models import (
    Establishment,
    ImportBatch,
    ImportRowError,
    StoredReceipt,
    StoredStatementRow,
)

SALES = "sales"
RETORNO = "retorno"
ANALYZE_AFTER = 10_000

Progress = Callable[[int], None]


class ImportFileError(InvalidInput):
    """The file as a whole cannot be imported (unreadable, missing columns); nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_file", message)


@dataclass
class ImportReport:
    kind: str
    file_name: str
    sha256: str | None = None
    batch_id: int | None = None
    rows: int = 0
    inserted: int = 0
    ignored: int = 0
    errors: list[csvformat.RowError] = field(default_factory=list)
    already_imported_batch: int | None = None

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "file": self.file_name,
            "batch_id": self.batch_id,
            "rows": self.rows,
            "inserted": self.inserted,
            "ignored": self.ignored,
            "errors": len(self.errors),
        }
        if self.already_imported_batch is not None:
            data["already_imported_batch"] = self.already_imported_batch
        return data


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def import_sales_file(
    db: Session,
    path: Path,
    *,
    tz: Any,
    user: User | None = None,
    source: str = "cli",
    progress: Progress | None = None,
) -> ImportReport:
    """Import an ERP card receipts CSV (SPEC section 6)."""
    return _import_file(db, path, SALES, tz=tz, user=user, source=source, progress=progress)


def import_retorno_file(
    db: Session,
    path: Path,
    *,
    tz: Any,
    user: User | None = None,
    source: str = "cli",
    progress: Progress | None = None,
) -> ImportReport:
    """Import an integrator retorno CSV (SPEC section 7)."""
    return _import_file(db, path, RETORNO, tz=tz, user=user, source=source, progress=progress)


def _import_file(
    db: Session,
    path: Path,
    kind: str,
    *,
    tz: Any,
    user: User | None,
    source: str,
    progress: Progress | None,
) -> ImportReport:
    try:
        sha256 = file_sha256(path)
    except OSError as error:
        raise ImportFileError(f"não foi possível ler o arquivo {path}: {error.strerror or error}") from None
    report = ImportReport(kind=kind, file_name=path.name, sha256=sha256)
    previous = db.scalars(
        sa.select(ImportBatch.id).where(ImportBatch.kind == kind, ImportBatch.sha256 == sha256).limit(1)
    ).first()
    if previous is not None:
        report.already_imported_batch = previous
        return report
    with path.open("rb") as raw:
        stream = _CountingReader(raw, progress)
        try:
            reader = (
                csvformat.read_receipts(stream, tz) if kind == SALES else csvformat.read_statement(stream)
            )
        except csvformat.FormatError as error:
            raise ImportFileError(f"{path.name}: {error}") from None
        _import_rows(db, reader, report, tz=tz, user=user, source=source)
    return report


class _CountingReader:
    """A binary stream that tells `progress` how many bytes were read so far."""

    def __init__(self, raw: IO[bytes], progress: Progress | None) -> None:
        self._raw = raw
        self._progress = progress
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        if self._progress is not None and data:
            self._progress(len(data))
        return data

    def readable(self) -> bool:
        return True


def _import_rows(
    db: Session,
    rows: Iterable[tuple[int, Any]],
    report: ImportReport,
    *,
    tz: Any,
    user: User | None,
    source: str,
) -> None:
    batch = ImportBatch(
        kind=report.kind,
        source=source,
        file_name=report.file_name[:300],
        sha256=report.sha256,
        user_id=user.id if user is not None else None,
    )
    db.add(batch)
    db.flush()
    report.batch_id = batch.id
    conn = db.connection()
    if report.kind == SALES:
        inserter = store.InsertOrIgnore(conn, StoredReceipt.__table__, store.RECEIPT_INSERT_COLUMNS)
    else:
        inserter = store.InsertOrIgnore(conn, StoredStatementRow.__table__, store.STATEMENT_INSERT_COLUMNS)
    codes: set[str] = set()
    good = 0
    try:
        for line, item in rows:
            if isinstance(item, csvformat.RowError):
                report.errors.append(item)
                continue
            good += 1
            codes.add(item.establishment_code)
            if report.kind == SALES:
                inserter.add(store.receipt_row(item, tz, batch.id, line))
            else:
                inserter.add(store.statement_row(item, batch.id, line))
        inserted = inserter.finish()
    except BaseException:
        inserter.abort()
        raise
    report.rows = good + len(report.errors)
    report.inserted = inserted
    report.ignored = good - inserted
    _store_errors(db, batch.id, report.errors)
    batch.rows_read = report.rows
    batch.inserted = report.inserted
    batch.ignored = report.ignored
    batch.errors = len(report.errors)
    batch.finished_at = utcnow()
    if inserted:
        bump_establishments(db, codes)
    elif not report.errors:
        # Nothing new and nothing wrong: an import that changes nothing leaves no trace either.
        db.delete(batch)
        report.batch_id = None
    if inserted >= ANALYZE_AFTER and db.get_bind().dialect.name == "postgresql":
        # Fresh statistics for the run that usually follows a big import.
        table = StoredReceipt.__tablename__ if report.kind == SALES else StoredStatementRow.__tablename__
        db.execute(sa.text(f"ANALYZE {table}"))
    db.flush()


def _store_errors(db: Session, batch_id: int, errors: list[csvformat.RowError]) -> None:
    table = ImportRowError.__table__
    for start in range(0, len(errors), store.SQLITE_BATCH):
        chunk = errors[start : start + store.SQLITE_BATCH]
        db.execute(
            sa.insert(table), [{"batch_id": batch_id, "line_no": e.line, "reason": e.reason} for e in chunk]
        )


def bump_establishments(db: Session, codes: Iterable[str]) -> None:
    """Mark the establishments' stored results stale: their data changed."""
    ordered = sorted(set(codes))
    if not ordered:
        return
    table = Establishment.__table__
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.code], set_={"data_version": table.c.data_version + 1}
    )
    for start in range(0, len(ordered), 1000):
        db.execute(stmt, [{"code": code, "data_version": 1} for code in ordered[start : start + 1000]])


def import_records(
    db: Session,
    kind: str,
    items: Iterable[records.Receipt | records.StatementRow],
    *,
    tz: Any,
    name: str,
    source: str,
    user: User | None = None,
) -> ImportReport:
    """Records already built (the integrator exchange, the demo): same storage rules as a file;
    `line_no` is the record's 1-based position."""
    report = ImportReport(kind=kind, file_name=name)
    _import_rows(db, enumerate(items, start=1), report, tz=tz, user=user, source=source)
    return report


# --- API: a batch of receipts as JSON ----------------------------------------------------------


def import_sales_items(
    db: Session, items: list[Any], *, tz: Any, user: User | None = None, source: str = "api"
) -> ImportReport:
    """`POST /sales`: receipts as JSON objects with the columns of SPEC section 6.

    Errors carry the item's 0-based index in `line`.
    """
    report = ImportReport(kind=SALES, file_name=f"api ({len(items)} itens)")
    _import_rows(db, _parse_items(items, tz), report, tz=tz, user=user, source=source)
    return report


def _parse_items(items: list[Any], tz: Any) -> Iterator[tuple[int, records.Receipt | csvformat.RowError]]:
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            yield index, csvformat.RowError(index, "cada item deve ser um objeto JSON")
            continue
        try:
            yield index, receipt_from_mapping(item, tz)
        except ValueError as error:
            yield index, csvformat.RowError(index, str(error))


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"coluna '{name}': valor inválido {value!r}")
    return str(value)


def parse_amount_any(value: Any, column: str) -> int:
    """An amount as JSON number (12.5) or text in either CSV dialect ('1234.56', '1.234,56')."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"coluna '{column}': valor obrigatório")
    if isinstance(value, int | float):
        try:
            cents = Decimal(str(value)) * 100
        except InvalidOperation:
            raise ValueError(f"coluna '{column}': valor monetário inválido {value!r}") from None
        if cents != cents.to_integral_value():
            raise ValueError(f"coluna '{column}': no máximo 2 casas decimais, recebido {value!r}")
        return int(cents)
    text = str(value).strip()
    dialect = csvformat.SEMICOLON if "," in text else csvformat.COMMA
    return csvformat.parse_amount(text, dialect, column)


def receipt_from_mapping(item: Mapping[str, Any], tz: Any) -> records.Receipt:
    """One receipt from a JSON object with the column names of SPEC section 6."""
    installments_raw = item.get("installments")
    if installments_raw in (None, ""):
        installments = 1
    elif isinstance(installments_raw, int) and not isinstance(installments_raw, bool):
        installments = installments_raw
    else:
        installments = csvformat.parse_int(_text(item, "installments"), "installments")
    payment_type = records.parse_payment_type(_text(item, "payment_type"))
    brand = _text(item, "brand").strip()
    if not brand and payment_type is records.PaymentType.PIX:
        brand = "pix"
    amount = parse_amount_any(item.get("amount"), "amount")
    if amount <= 0:
        raise ValueError("coluna 'amount': deve ser maior que zero")
    return records.Receipt(
        sale_id=_text(item, "sale_id"),
        establishment_code=_text(item, "establishment_code"),
        sale_datetime=csvformat.parse_datetime(_text(item, "sale_datetime"), tz, "sale_datetime"),
        amount_cents=amount,
        payment_type=payment_type,
        brand=brand,
        acquirer=_text(item, "acquirer"),
        installments=installments,
        authorization_code=_text(item, "authorization_code"),
        nsu=_text(item, "nsu"),
        origin=_text(item, "origin"),
        tid=_text(item, "tid"),
        txid=_text(item, "txid"),
        terminal=_text(item, "terminal"),
        cnpj=_text(item, "cnpj"),
    )
