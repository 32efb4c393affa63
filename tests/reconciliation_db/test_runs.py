"""Runs are recorded and reproducible; unchanged establishments are not recomputed; bad input refused."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from onboarding import db
from reconciliation import synth
from reconciliation.models import Establishment, Result, Run
from tests.onboarding.helpers import snapshot
from tests.reconciliation_db.helpers import RETORNO_COLUMNS, last_json, retorno, write_csv
from tests.reconciliation_db.test_end_to_end import AS_OF, START, write_files


def load(runner: Any, tmp_path: Path, n: int = 300, establishments: int = 3) -> synth.SyntheticData:
    data = synth.generate(
        n, seed=3, start_date=START, days=14, establishments=establishments, fault_rate=0.3, as_of=AS_OF
    )
    sales, retorno_file = write_files(data, tmp_path, ",")
    assert runner.invoke(args=["recon", "import-sales", str(sales)]).exit_code == 0
    assert runner.invoke(args=["recon", "import-retorno", str(retorno_file)]).exit_code == 0
    return data


def run(runner: Any, *args: str) -> dict[str, Any]:
    result = runner.invoke(args=["recon", "run", *args])
    assert result.exit_code == 0, result.output
    return last_json(result.output)


def export(runner: Any, path: Path, *args: str) -> bytes:
    result = runner.invoke(args=["recon", "export", "--out", str(path), *args])
    assert result.exit_code == 0, result.output
    return path.read_bytes()


def test_every_run_is_recorded_and_a_rerun_reproduces_it(app: Flask, runner: Any, tmp_path: Path) -> None:
    load(runner, tmp_path)
    first = run(runner, "--as-of", AS_OF.isoformat())
    assert first["establishments_reconciled"] == 3 and first["establishments_unchanged"] == 0
    assert first["results_written"]["inserted"] == first["receipts"] + first["statement_rows"]
    exported = export(runner, tmp_path / "a.csv")

    # Nothing changed: nothing is recomputed, same digest.
    second = run(runner, "--as-of", AS_OF.isoformat())
    assert second["establishments_reconciled"] == 0 and second["establishments_unchanged"] == 3
    assert second["result_digest"] == first["result_digest"]
    # Recomputed from scratch: the same results, nothing rewritten.
    full = run(runner, "--as-of", AS_OF.isoformat(), "--full")
    assert full["establishments_reconciled"] == 3
    assert full["result_digest"] == first["result_digest"]
    assert full["results_written"] == {
        "inserted": 0,
        "updated": 0,
        "unchanged": first["results_written"]["inserted"],
    }
    assert full["status"] == first["status"] and full["divergences"] == first["divergences"]
    assert export(runner, tmp_path / "b.csv") == exported

    # Another as-of is another result; going back reproduces the first one.
    later = run(runner, "--as-of", "2025-03-20")
    assert later["result_digest"] != first["result_digest"]
    assert later["status"]["pending"] < first["status"]["pending"]
    again = run(runner, "--as-of", AS_OF.isoformat())
    assert again["result_digest"] == first["result_digest"]
    assert export(runner, tmp_path / "c.csv", "--as-of", AS_OF.isoformat()) == exported

    with app.app_context():
        runs = db.session().scalars(sa.select(Run).order_by(Run.id)).all()
        assert [r.status for r in runs] == ["finished"] * 5
        assert [r.as_of for r in runs] == [AS_OF, AS_OF, AS_OF, date(2025, 3, 20), AS_OF]
        assert all(r.finished_at is not None and r.duration_ms is not None for r in runs)
        assert runs[0].status_counts is not None
        assert runs[0].status_counts["status"] == first["status"]
        assert runs[0].divergence_counts is not None
        assert runs[0].divergence_counts["divergences"] == first["divergences"]
        assert runs[0].result_digest == first["result_digest"]


def test_new_data_recomputes_only_its_establishment(app: Flask, runner: Any, tmp_path: Path) -> None:
    data = load(runner, tmp_path)
    run(runner, "--as-of", AS_OF.isoformat())
    target = data.receipts[0]
    extra = write_csv(
        tmp_path / "extra.csv",
        RETORNO_COLUMNS,
        [retorno("EXTRA-1", "x", establishment_code=target.establishment_code, sale_date="2025-03-11")],
    )
    assert runner.invoke(args=["recon", "import-retorno", str(extra)]).exit_code == 0
    incremental = run(runner, "--as-of", AS_OF.isoformat())
    assert incremental["establishments_reconciled"] == 1
    assert incremental["results_written"]["inserted"] == 1
    full = run(runner, "--as-of", AS_OF.isoformat(), "--full")
    assert full["result_digest"] == incremental["result_digest"]
    assert full["results_written"]["inserted"] == full["results_written"]["updated"] == 0


def test_one_establishment(app: Flask, runner: Any, tmp_path: Path) -> None:
    data = load(runner, tmp_path)
    code = sorted({r.establishment_code for r in data.receipts})[0]
    summary = run(runner, "--as-of", AS_OF.isoformat(), "--establishment", code)
    assert summary["establishment"] == code
    assert summary["receipts"] == sum(1 for r in data.receipts if r.establishment_code == code)
    with app.app_context():
        session = db.session()
        codes = set(session.scalars(sa.select(Result.establishment_code)))
        assert codes == {code}
        fresh = session.scalars(sa.select(Establishment.code).where(Establishment.result_as_of.is_not(None)))
        assert list(fresh) == [code]


def test_bad_run_input_changes_nothing(app: Flask, runner: Any, tmp_path: Path) -> None:
    load(runner, tmp_path, n=50)
    with app.app_context():
        before = snapshot(db.session())
    for args, reason in (
        (["--as-of", "2025-13-01"], "--as-of"),
        (["--as-of", "15/03/2025"], "AAAA-MM-DD"),
        (["--establishment", "0000"], "0000"),
    ):
        result = runner.invoke(args=["recon", "run", *args])
        assert result.exit_code != 0
        assert len(result.output.strip().splitlines()) == 1 and reason in result.output
    for args in (["--out", str(tmp_path / "nope" / "x.csv")], ["--out", str(tmp_path)]):
        result = runner.invoke(args=["recon", "export", *args])
        assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
        result = runner.invoke(args=["recon", "remessa", *args])
        assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    with app.app_context():
        assert snapshot(db.session()) == before


def test_a_failed_run_is_recorded_and_keeps_the_previous_results(
    app: Flask, runner: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    load(runner, tmp_path, n=80)
    run(runner, "--as-of", AS_OF.isoformat())
    before = export(runner, tmp_path / "before.csv")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("simulated")

    from reconciliation import engine

    monkeypatch.setattr(engine.matcher_columnar, "reconcile_frames", broken)
    result = runner.invoke(args=["recon", "run", "--as-of", "2025-03-20"])
    assert result.exit_code != 0
    monkeypatch.undo()
    with app.app_context():
        last = db.session().scalars(sa.select(Run).order_by(Run.id.desc()).limit(1)).one()
        assert (last.status, last.as_of) == ("failed", date(2025, 3, 20))
        assert last.error is not None and "simulated" in last.error
    assert export(runner, tmp_path / "after.csv") == before
