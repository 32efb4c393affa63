"""The remessa (receipts of the window plus corrected receipts to send again) and the result CSV.

Both files are written to a temporary file beside the target and renamed into place, so a failed
command leaves no half-written file.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from reconciliation import csvformat, records, store, window
from reconciliation.models import Result, StoredReceipt


def remessa_filter(as_of: date, lookback_days: int, establishment: str | None) -> sa.ColumnElement[bool]:
    table = StoredReceipt.__table__
    start = window.window_start(as_of, lookback_days)
    condition = sa.or_(
        table.c.sale_date.between(start, as_of),
        sa.and_(table.c.resend_pending.is_(True), table.c.corrected_on <= as_of),
    )
    if establishment is not None:
        condition = sa.and_(condition, table.c.establishment_code == establishment)
    return condition


def remessa_receipts(
    db: Session, *, as_of: date, lookback_days: int, establishment: str | None, tz: ZoneInfo
) -> Iterator[records.Receipt]:
    """The receipts dated inside the window `[D - L, D]` plus the corrected receipts not yet sent
    again, by establishment, sale time and id."""
    table = StoredReceipt.__table__
    stmt = (
        sa.select(*(table.c[name] for name in store.RECEIPT_FIELDS))
        .where(remessa_filter(as_of, lookback_days, establishment))
        .order_by(table.c.establishment_code, table.c.sale_datetime, table.c.sale_id)
    )
    for row in db.connection().execute(stmt, execution_options={"yield_per": store.FETCH_BATCH}):
        yield store.receipt_from_values(row, tz)


def mark_remessa_sent(db: Session, *, as_of: date, lookback_days: int, establishment: str | None) -> int:
    """After a remessa really went out: its corrected receipts are no longer waiting to be resent."""
    table = StoredReceipt.__table__
    stmt = (
        sa.update(table)
        .where(remessa_filter(as_of, lookback_days, establishment), table.c.resend_pending.is_(True))
        .values(resend_pending=False)
    )
    return db.execute(stmt).rowcount


@contextmanager
def atomic_text_file(path: Path) -> Iterator[IO[str]]:
    """A UTF-8 text file that appears at `path` only once fully written."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_remessa_file(
    db: Session,
    path: Path,
    *,
    as_of: date,
    lookback_days: int,
    establishment: str | None,
    tz: ZoneInfo,
) -> int:
    with atomic_text_file(path) as handle:
        receipts = remessa_receipts(
            db, as_of=as_of, lookback_days=lookback_days, establishment=establishment, tz=tz
        )
        return csvformat.write_remessa(receipts, handle, tz=tz)


def write_results_csv(db: Session, stream: IO[str], establishment: str | None = None) -> int:
    """The stored results as the result CSV (SPEC section 8): receipts first, then retorno rows."""
    table = Result.__table__
    stmt = sa.select(
        table.c.kind,
        table.c.record_key,
        table.c.status,
        table.c.divergences,
        table.c.counterpart_ids,
        table.c.rule,
    ).order_by(table.c.kind, table.c.record_key)
    if establishment is not None:
        stmt = stmt.where(table.c.establishment_code == establishment)
    writer = csv.writer(stream, delimiter=",", lineterminator="\n")
    writer.writerow(csvformat.RESULT_COLUMNS)
    count = 0
    for row in db.connection().execute(stmt, execution_options={"yield_per": store.FETCH_BATCH}):
        writer.writerow(row)
        count += 1
    return count
