"""Importing ERP receipts and retornos: both dialects, encodings, bad lines, idempotence."""

from __future__ import annotations

import codecs
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from onboarding import db
from reconciliation.models import (
    Establishment,
    ImportBatch,
    ImportRowError,
    StoredReceipt,
    StoredStatementRow,
)
from tests.reconciliation_db.helpers import (
    RETORNO_COLUMNS,
    SALES_COLUMNS,
    counts,
    last_json,
    retorno,
    sale,
    write_csv,
)


def test_sales_comma_dialect_with_bom(app: Flask, runner: Any, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "vendas.csv",
        SALES_COLUMNS,
        [sale("1", amount="1234.56", installments="3"), sale("2", sale_datetime="10/03/2025 23:58:10")],
        encoding="utf-8-sig",
    )
    assert path.read_bytes().startswith(codecs.BOM_UTF8)
    result = runner.invoke(args=["recon", "import-sales", str(path)])
    assert result.exit_code == 0, result.output
    assert last_json(result.output) | {"batch_id": None} == {
        "kind": "sales",
        "file": "vendas.csv",
        "batch_id": None,
        "rows": 2,
        "inserted": 2,
        "ignored": 0,
        "errors": 0,
    }
    with app.app_context():
        session = db.session()
        first = session.scalars(sa.select(StoredReceipt).where(StoredReceipt.sale_id == "1")).one()
        assert first.amount_cents == 123456 and first.installments == 3
        assert first.sale_datetime == datetime(2025, 3, 10, 17, 30, tzinfo=UTC)  # 14:30 in São Paulo
        assert (first.batch_id, first.line_no) == (last_json(result.output)["batch_id"], 2)
        late = session.scalars(sa.select(StoredReceipt).where(StoredReceipt.sale_id == "2")).one()
        # 23:58 in São Paulo is already the next day in UTC; the business date stays the 10th.
        assert late.sale_date == date(2025, 3, 10)
        assert late.sale_datetime == datetime(2025, 3, 11, 2, 58, 10, tzinfo=UTC)
        assert session.get(Establishment, "1020304050") is not None


def test_sales_semicolon_dialect_in_cp1252(app: Flask, runner: Any, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "vendas.csv",
        SALES_COLUMNS,
        [sale("10", amount="1.234,56", payment_type="Crédito"), sale("11", amount="7,5", brand="ELO")],
        delimiter=";",
        encoding="cp1252",
    )
    assert "Crédito".encode("cp1252") in path.read_bytes()
    result = runner.invoke(args=["recon", "import-sales", str(path)])
    assert result.exit_code == 0, result.output
    assert last_json(result.output)["inserted"] == 2
    with app.app_context():
        rows = {
            r.sale_id: r
            for r in db.session().scalars(sa.select(StoredReceipt).order_by(StoredReceipt.sale_id))
        }
        assert (rows["10"].amount_cents, rows["10"].payment_type) == (123456, "credit")
        assert (rows["11"].amount_cents, rows["11"].brand) == (750, "elo")


def test_bad_lines_are_reported_with_their_line_numbers_and_good_rows_kept(
    app: Flask, runner: Any, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "vendas.csv",
        SALES_COLUMNS,
        [
            sale("1"),
            sale("2", amount="abc"),
            sale("3"),
            sale("4", sale_datetime="31/02/2025 10:00:00"),
            sale("5", installments="0"),
            sale("6", payment_type="boleto"),
        ],
    )
    result = runner.invoke(args=["recon", "import-sales", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    errors = [line for line in lines[:-1] if line.startswith("linha")]
    assert [e.split(":")[0] for e in errors] == ["linha 3", "linha 5", "linha 6", "linha 7"]
    assert "amount" in errors[0] and "sale_datetime" in errors[1]
    assert "installments" in errors[2] and "payment_type" in errors[3]
    summary = last_json(result.output)
    assert (summary["rows"], summary["inserted"], summary["errors"]) == (6, 2, 4)
    with app.app_context():
        session = db.session()
        assert sorted(session.scalars(sa.select(StoredReceipt.sale_id))) == ["1", "3"]
        stored = session.execute(sa.select(ImportRowError.line_no, ImportRowError.reason)).all()
        assert sorted(line for line, _ in stored) == [3, 5, 6, 7]
        batch = session.scalars(sa.select(ImportBatch)).one()
        assert (batch.rows_read, batch.inserted, batch.errors, batch.kind) == (6, 2, 4, "sales")


def test_reimport_adds_nothing_and_known_ids_are_ignored(app: Flask, runner: Any, tmp_path: Path) -> None:
    first = write_csv(tmp_path / "a.csv", SALES_COLUMNS, [sale("1"), sale("2")])
    assert runner.invoke(args=["recon", "import-sales", str(first)]).exit_code == 0
    before = counts(app)
    again = runner.invoke(args=["recon", "import-sales", str(first)])
    assert again.exit_code == 0 and "já importado" in again.output
    assert last_json(again.output)["inserted"] == 0
    assert counts(app) == before
    # Another file repeating sale 2 (even with other data) only adds sale 3.
    second = write_csv(tmp_path / "b.csv", SALES_COLUMNS, [sale("2", amount="5.00"), sale("3")])
    result = runner.invoke(args=["recon", "import-sales", str(second)])
    summary = last_json(result.output)
    assert (summary["inserted"], summary["ignored"], summary["errors"]) == (1, 1, 0)
    with app.app_context():
        session = db.session()
        assert sorted(session.scalars(sa.select(StoredReceipt.sale_id))) == ["1", "2", "3"]
        kept = session.scalars(sa.select(StoredReceipt).where(StoredReceipt.sale_id == "2")).one()
        assert kept.amount_cents == 10000


def test_retorno_repeated_record_id_is_ignored_not_an_error(app: Flask, runner: Any, tmp_path: Path) -> None:
    rows = [
        retorno("R1", "1"),
        retorno("R2", "2", installments="2", installment_number="1", gross_amount="50.00"),
        retorno("R1", "1", gross_amount="1.00"),  # seen earlier in this file: ignored
        retorno("R3", "2", installments="2", installment_number="2", gross_amount="50.00"),
    ]
    path = write_csv(tmp_path / "retorno.csv", RETORNO_COLUMNS, rows, delimiter=";", encoding="cp1252")
    result = runner.invoke(args=["recon", "import-retorno", str(path)])
    assert result.exit_code == 0, result.output
    summary = last_json(result.output)
    assert (summary["rows"], summary["inserted"], summary["ignored"], summary["errors"]) == (4, 3, 1, 0)
    later = write_csv(tmp_path / "retorno2.csv", RETORNO_COLUMNS, [retorno("R3", "2"), retorno("R4", "4")])
    summary = last_json(runner.invoke(args=["recon", "import-retorno", str(later)]).output)
    assert (summary["inserted"], summary["ignored"], summary["errors"]) == (1, 1, 0)
    with app.app_context():
        session = db.session()
        stored = {r.record_id: r for r in session.scalars(sa.select(StoredStatementRow))}
        assert sorted(stored) == ["R1", "R2", "R3", "R4"]
        assert stored["R1"].gross_amount_cents == 10000  # the first R1 is the one kept
        assert (stored["R3"].installment_number, stored["R3"].line_no) == (2, 5)
        assert stored["R1"].sale_date == date(2025, 3, 10)


def test_bad_file_exits_with_one_line_and_changes_nothing(app: Flask, runner: Any, tmp_path: Path) -> None:
    ok = write_csv(tmp_path / "ok.csv", SALES_COLUMNS, [sale("1")])
    assert runner.invoke(args=["recon", "import-sales", str(ok)]).exit_code == 0
    before = counts(app)
    missing = write_csv(tmp_path / "missing.csv", SALES_COLUMNS[:-2], [sale("2")])
    result = runner.invoke(args=["recon", "import-sales", str(missing)])
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1
    assert "nsu" in result.output and "origin" in result.output
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = runner.invoke(args=["recon", "import-retorno", str(empty)])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(args=["recon", "import-retorno", str(tmp_path / "nope.csv")])
    assert result.exit_code != 0 and "não encontrado" in result.output
    # A sales file given as retorno lacks the retorno columns.
    result = runner.invoke(args=["recon", "import-retorno", str(ok)])
    assert result.exit_code != 0 and "record_id" in result.output
    assert counts(app) == before


def test_failure_in_the_middle_of_a_file_changes_nothing(
    app: Flask, runner: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from reconciliation import importers

    path = write_csv(tmp_path / "vendas.csv", SALES_COLUMNS, [sale(str(i)) for i in range(1, 50)])
    original = importers.store.receipt_row
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 30:
            raise OSError("disco cheio")
        return original(*args, **kwargs)

    monkeypatch.setattr(importers.store, "receipt_row", failing)
    result = runner.invoke(args=["recon", "import-sales", str(path)])
    assert result.exit_code != 0
    assert counts(app) == {
        "recon_receipt": 0,
        "recon_statement_row": 0,
        "recon_import_batch": 0,
        "recon_import_error": 0,
        "recon_result": 0,
    }


def test_a_big_import_refreshes_the_planner_statistics(
    pg_app: Flask, tmp_path: Path, monkeypatch: Any
) -> None:
    from reconciliation import importers

    monkeypatch.setattr(importers, "ANALYZE_AFTER", 5)
    path = write_csv(tmp_path / "vendas.csv", SALES_COLUMNS, [sale(str(i)) for i in range(1, 8)])
    result = pg_app.test_cli_runner().invoke(args=["recon", "import-sales", str(path)])
    assert result.exit_code == 0, result.output
    with pg_app.app_context():
        reltuples = db.session().scalar(
            sa.text("SELECT reltuples FROM pg_class WHERE relname = 'recon_receipt'")
        )
        assert reltuples == 7
