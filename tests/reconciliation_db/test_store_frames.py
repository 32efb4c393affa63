"""Stored records come back as frames equal to the records; results keep their digest."""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from flask import Flask

from onboarding import db
from reconciliation import engine, frames, store
from reconciliation.models import Establishment, StoredReceipt, StoredStatementRow
from tests.reconciliation.factories import TZ, receipt, sale_rows
from tests.reconciliation_db.helpers import read_export
from tests.reconciliation_db.test_end_to_end import AS_OF
from tests.reconciliation_db.test_runs import export, load, run


def test_stored_records_load_as_the_frames_of_the_records(app: Flask) -> None:
    odd = receipt(
        "2",
        est="E1",
        nsu=None,
        auth=None,
        txid='tx,"quoted"\nline',
        payment_type="pix",
        brand="pix",
        corrected_on=date(2024, 3, 15),
    )
    receipts = [
        replace(receipt("1", est="E1"), sale_datetime=datetime(2024, 3, 14, 23, 59, 59, 999_999, tzinfo=TZ)),
        odd,
        receipt("3", est="E2"),
    ]
    rows = sale_rows(100, est="E1", installments=3, amount=1001)
    rows[1] = replace(rows[1], sale_time=time(23, 59, 59, 123_456), tid='a,"b"')
    rows[2] = replace(rows[2], sale_time=None, nsu=None)
    rows += sale_rows(200, est="E2")
    with app.app_context():
        with db.session_scope() as session:
            conn = session.connection()
            for table, columns, values in (
                (
                    StoredReceipt.__table__,
                    store.RECEIPT_INSERT_COLUMNS,
                    [store.receipt_row(r, TZ, None, None) for r in receipts],
                ),
                (
                    StoredStatementRow.__table__,
                    store.STATEMENT_INSERT_COLUMNS,
                    [store.statement_row(r, None, None) for r in rows],
                ),
            ):
                inserter = store.InsertOrIgnore(conn, table, columns)
                for value in values:
                    inserter.add(tuple(value))
                assert inserter.finish() == len(values)
        with db.session_scope() as session:
            conn = session.connection()
            got_receipts = store.load_receipt_frame(conn, ["E1"], TZ).sort("sale_id")
            got_rows = store.load_statement_frame(conn, ["E1"], TZ).sort("record_id")
            everything = store.load_statement_frame(conn, None, TZ)
            nothing = store.load_receipt_frame(conn, ["NONE"], TZ)
    assert got_receipts.equals(frames.receipts_frame(receipts[:2]).sort("sale_id"))
    assert got_rows.equals(frames.statement_frame(rows[:3]).sort("record_id"))
    assert everything.height == len(rows)
    assert nothing.is_empty() and nothing.schema == pl.Schema(frames.RECEIPT_SCHEMA)


def test_the_digest_of_an_establishment_sums_the_crc32_of_its_result_lines(
    app: Flask, runner: Any, tmp_path: Path
) -> None:
    # The definition stored digests were made with: a new version must give the same digests.
    data = load(runner, tmp_path, n=120, establishments=2)
    run(runner, "--as-of", AS_OF.isoformat())
    export(runner, tmp_path / "out.csv")
    exported = read_export(tmp_path / "out.csv")
    by_id = {r.sale_id: r.establishment_code for r in data.receipts}
    by_id.update({r.record_id: r.establishment_code for r in data.statement_rows})
    sums: dict[str, list[int]] = {}
    for row in exported.values():
        text = "\t".join(
            (row["kind"], row["status"], row["divergences"], row["counterpart_ids"], row["rule"])
        )
        entry = sums.setdefault(by_id[row["id"]], [0, 0])
        entry[0] += zlib.crc32((text + row["id"]).encode())
        entry[1] += 1
    with app.app_context():
        rows = db.session().execute(sa.select(Establishment.code, Establishment.result_digest))
        stored = {code: digest for code, digest in rows}
    assert stored == {code: f"{total:016x}{count:08x}" for code, (total, count) in sums.items()}
    assert engine._digests(pl.DataFrame(schema=store.RESULT_FRAME_SCHEMA), ["X"]) == {"X": "0" * 24}
