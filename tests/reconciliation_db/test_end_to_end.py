"""End to end through the CLI on generated data: import, run, export, checked row by row."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from onboarding import db
from reconciliation import csvformat, synth
from reconciliation.models import Run
from tests.reconciliation_db.helpers import last_json, read_export

START = date(2025, 3, 1)
AS_OF = date(2025, 3, 12)


def generated(seed: int = 11, n: int = 600) -> synth.SyntheticData:
    return synth.generate(
        n, seed=seed, start_date=START, days=14, establishments=4, fault_rate=0.35, as_of=AS_OF
    )


def write_files(data: synth.SyntheticData, tmp_path: Path, delimiter: str) -> tuple[Path, Path]:
    encoding = "utf-8" if delimiter == "," else "cp1252"
    sales, retorno = tmp_path / "vendas.csv", tmp_path / "retorno.csv"
    with sales.open("w", encoding=encoding, newline="") as handle:
        csvformat.write_receipts_csv(data.receipts, handle, delimiter=delimiter)
    with retorno.open("w", encoding=encoding, newline="") as handle:
        csvformat.write_statement_csv(data.statement_rows, handle, delimiter=delimiter)
    return sales, retorno


def assert_matches_expectations(
    exported: dict[tuple[str, str], dict[str, str]], data: synth.SyntheticData
) -> None:
    expected = {(kind.value, record_id): exp for (kind, record_id), exp in data.expected.items()}
    assert set(exported) == set(expected)
    wrong = []
    for key, exp in expected.items():
        row = exported[key]
        got = (row["status"], row["divergences"], row["counterpart_ids"])
        want = (exp.status.value, "|".join(exp.divergences), "|".join(exp.counterpart_ids))
        if got != want:
            wrong.append((key, got, want))
    assert not wrong, f"{len(wrong)} rows differ, e.g. {wrong[:3]}"


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_cli_import_run_export_row_by_row(app: Flask, runner: Any, tmp_path: Path, delimiter: str) -> None:
    data = generated()
    sales, retorno = write_files(data, tmp_path, delimiter)
    statuses = Counter(exp.status.value for exp in data.expected.values())
    assert len(statuses) >= 6, statuses  # the data exercise most statuses

    result = runner.invoke(args=["recon", "import-sales", str(sales)])
    assert result.exit_code == 0, result.output
    assert last_json(result.output)["inserted"] == len(data.receipts)
    result = runner.invoke(args=["recon", "import-retorno", str(retorno)])
    assert result.exit_code == 0, result.output
    assert last_json(result.output)["inserted"] == len(data.statement_rows)

    result = runner.invoke(args=["recon", "run", "--as-of", AS_OF.isoformat()])
    assert result.exit_code == 0, result.output
    summary = last_json(result.output)

    out = tmp_path / "resultado.csv"
    result = runner.invoke(args=["recon", "export", "--out", str(out), "--as-of", AS_OF.isoformat()])
    assert result.exit_code == 0, result.output
    assert last_json(result.output)["rows"] == len(data.receipts) + len(data.statement_rows)
    exported = read_export(out)
    assert_matches_expectations(exported, data)

    # The run summary counts the same rows the export holds.
    assert summary["as_of"] == AS_OF.isoformat()
    assert summary["status"] == {s: statuses.get(s, 0) for s in summary["status"]}
    sale_statuses = Counter(row["status"] for (kind, _), row in exported.items() if kind == "sale")
    assert summary["sales"] == {s: sale_statuses.get(s, 0) for s in summary["sales"]}
    divergences = Counter(d for row in exported.values() for d in row["divergences"].split("|") if d)
    assert summary["divergences"] == {d: divergences.get(d, 0) for d in summary["divergences"]}
    assert (summary["receipts"], summary["statement_rows"]) == (len(data.receipts), len(data.statement_rows))
    with app.app_context():
        run = db.session().scalars(sa.select(Run)).one()
        assert (run.status, run.as_of, run.receipts) == ("finished", AS_OF, len(data.receipts))
        assert run.status_counts is not None and run.status_counts["status"] == summary["status"]


def test_data_arriving_in_several_files_ends_as_one_reconcile(
    app: Flask, runner: Any, tmp_path: Path
) -> None:
    """Runs between partial imports, then the rest: the stored results equal the full matcher's."""
    data = generated(seed=5, n=400)
    half_r, half_s = len(data.receipts) // 2, len(data.statement_rows) // 2
    parts = [
        synth.SyntheticData(data.receipts[:half_r], data.statement_rows[:half_s], {}),
        synth.SyntheticData(data.receipts[half_r:], data.statement_rows[half_s:], {}),
    ]
    for i, part in enumerate(parts):
        folder = tmp_path / f"part{i}"
        folder.mkdir()
        sales, retorno = write_files(part, folder, ",")
        assert runner.invoke(args=["recon", "import-sales", str(sales)]).exit_code == 0
        assert runner.invoke(args=["recon", "import-retorno", str(retorno)]).exit_code == 0
        result = runner.invoke(args=["recon", "run", "--as-of", AS_OF.isoformat()])
        assert result.exit_code == 0, result.output
    out = tmp_path / "resultado.csv"
    assert runner.invoke(args=["recon", "export", "--out", str(out)]).exit_code == 0
    assert_matches_expectations(read_export(out), data)
