"""`recon remessa` (window and corrected receipts) and `recon export` (every record, one row)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from onboarding import db
from reconciliation import cli, importers, records
from reconciliation.models import StoredReceipt
from tests.reconciliation_db.helpers import (
    RETORNO_COLUMNS,
    SALES_COLUMNS,
    last_json,
    read_export,
    retorno,
    sale,
    write_csv,
)


def test_remessa_is_the_window_of_each_establishment(app: Flask, runner: Any, tmp_path: Path) -> None:
    days = {"a": "2025-03-06", "b": "2025-03-07", "c": "2025-03-10", "d": "2025-03-11"}
    rows = [sale(sale_id, sale_datetime=f"{day}T10:00:00") for sale_id, day in days.items()]
    rows.append(sale("e", sale_datetime="2025-03-08T09:00:00", establishment_code="999"))
    # 23:59 of the 10th in São Paulo is the 11th in UTC: still the 10th for the window.
    rows.append(sale("f", sale_datetime="2025-03-10T23:59:00"))
    path = write_csv(tmp_path / "vendas.csv", SALES_COLUMNS, rows)
    assert runner.invoke(args=["recon", "import-sales", str(path)]).exit_code == 0

    out = tmp_path / "remessa.csv"
    result = runner.invoke(args=["recon", "remessa", "--as-of", "2025-03-10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert last_json(result.output)["receipts"] == 4
    with out.open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames is not None and set(SALES_COLUMNS) <= set(reader.fieldnames)
        sent = [row["sale_id"] for row in reader]
    assert sent == ["b", "c", "f", "e"]  # by establishment, then sale time

    result = runner.invoke(
        args=["recon", "remessa", "--as-of", "2025-03-10", "--establishment", "1020304050", "--out", str(out)]
    )
    assert last_json(result.output)["receipts"] == 3
    # The written file can be read back as an ERP export.
    with out.open("rb") as handle:
        read = [item for _, item in importers.csvformat.read_receipts(handle)]
    assert all(isinstance(item, records.Receipt) for item in read)
    assert sorted(r.sale_id for r in read) == ["b", "c", "f"]


def test_export_has_one_row_per_record_whatever_its_date(app: Flask, runner: Any, tmp_path: Path) -> None:
    sales = write_csv(
        tmp_path / "vendas.csv",
        SALES_COLUMNS,
        [
            sale("1"),
            sale("2", sale_datetime="2025-06-01T10:00:00"),
            sale("3", sale_datetime="2024-01-02T10:00:00"),
        ],
    )
    rows = write_csv(
        tmp_path / "retorno.csv",
        RETORNO_COLUMNS,
        [retorno("R1", "1"), retorno("R9", "9", sale_date="2025-07-01")],
    )
    assert runner.invoke(args=["recon", "import-sales", str(sales)]).exit_code == 0
    assert runner.invoke(args=["recon", "import-retorno", str(rows)]).exit_code == 0
    out = tmp_path / "resultado.csv"
    result = runner.invoke(args=["recon", "export", "--out", str(out), "--as-of", "2025-03-11"])
    assert result.exit_code == 0, result.output
    exported = read_export(out)
    assert {key: row["status"] for key, row in exported.items()} == {
        ("sale", "1"): "matched",
        ("sale", "2"): "pending",  # dated after the as-of: left for a later run
        ("sale", "3"): "not_found",
        ("statement", "R1"): "matched",
        ("statement", "R9"): "pending",
    }
    assert exported[("sale", "1")]["rule"] != ""

    # A receipt stored without its establishment marked stale still gets its row.
    with app.app_context():
        session = db.session()
        values = dict(zip(importers.store.RECEIPT_INSERT_COLUMNS, next(iter(_sneaky_row())), strict=True))
        session.execute(sa.insert(StoredReceipt.__table__), [values])
        session.commit()
    result = runner.invoke(args=["recon", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert read_export(out)[("sale", "SNEAKY")]["status"] == "not_found"


def _sneaky_row() -> list[tuple]:
    tz = records.business_tz()
    with io.BytesIO(
        (
            ",".join(SALES_COLUMNS)
            + "\n"
            + ",".join(sale("SNEAKY", sale_datetime="2025-03-01T10:00:00").values())
        ).encode()
    ) as handle:
        receipt = next(iter(importers.csvformat.read_receipts(handle, tz)))[1]
    assert isinstance(receipt, records.Receipt)
    return [importers.store.receipt_row(receipt, tz, None, None)]


def test_progress_bar_only_on_a_terminal(monkeypatch: Any) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(cli.sys, "stdout", screen)
    with cli._progress(1000, "Importando") as update:
        assert update is not None
        update(1000)
    assert "Importando" in screen.getvalue()

    pipe = io.StringIO()
    monkeypatch.setattr(cli.sys, "stdout", pipe)
    with cli._progress(1000, "Importando") as update:
        assert update is None
    assert pipe.getvalue() == ""
