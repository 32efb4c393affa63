"""A run whose process dies is not left `running` forever; a live run is never taken for dead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import time_machine
from flask import Flask

from onboarding import db
from onboarding.db import utcnow
from reconciliation import engine
from reconciliation.engine import INTERRUPTED_RUN_ERROR, INTERRUPTED_RUN_GRACE, mark_interrupted_runs
from reconciliation.models import Run
from tests.reconciliation_db.test_end_to_end import AS_OF
from tests.reconciliation_db.test_runs import load, run

ROOT = Path(__file__).resolve().parents[2]
LATER = INTERRUPTED_RUN_GRACE + timedelta(seconds=5)


def runs(app: Flask) -> list[tuple[int, str, str | None]]:
    with app.app_context():
        rows = db.session().execute(sa.select(Run.id, Run.status, Run.error).order_by(Run.id))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def kill_while_running(app: Flask) -> int:
    """Start `recon run` in its own process and SIGKILL it while its run is `running`."""
    env = {**os.environ, "DATABASE_URL": app.config["DATABASE_URL"], "SECRET_KEY": "test-secret"}
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "recon", "run", "--full", "--as-of", str(AS_OF)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        running = [run_id for run_id, status, _ in runs(app) if status == "running"]
        if running:
            process.send_signal(signal.SIGKILL)
            process.wait()
            assert process.returncode == -signal.SIGKILL
            return running[0]
        time.sleep(0.005)
    raise AssertionError(f"the run was never seen running: {process.communicate()[1]!r}")


def test_a_killed_run_is_marked_failed_by_the_next_run(app: Flask, runner: Any, tmp_path: Path) -> None:
    load(runner, tmp_path, n=6000, establishments=2)
    killed = kill_while_running(app)

    # Within the grace period it may still be a run that has not claimed its row yet.
    run(runner, "--as-of", AS_OF.isoformat())
    assert (killed, "running", None) in runs(app)

    with time_machine.travel(utcnow() + LATER):
        summary = run(runner, "--as-of", AS_OF.isoformat(), "--full")
    assert summary["receipts"] == 6000
    by_id = {run_id: (status, error) for run_id, status, error in runs(app)}
    assert by_id[killed] == ("failed", INTERRUPTED_RUN_ERROR)
    assert by_id[summary["run_id"]] == ("finished", None)
    assert [s for s, _ in by_id.values()].count("running") == 0


def test_a_live_run_is_not_taken_for_dead(pg_app: Flask, tmp_path: Path) -> None:
    runner = pg_app.test_cli_runner()
    load(runner, tmp_path, n=50)
    with pg_app.app_context():
        session = db.session()
        live = Run(as_of=AS_OF, lookback_days=3, started_at=utcnow() - 2 * LATER)
        session.add(live)
        session.commit()
        live_id = live.id
    # Another process working on that run holds its row, as `reconcile_into` does.
    engine = pg_app.extensions["db_engine"]
    with engine.connect() as worker:
        worker.execute(sa.update(Run).where(Run.id == live_id).values(status="running"))
        summary = run(runner, "--as-of", AS_OF.isoformat())
        assert (live_id, "running", None) in runs(pg_app)
        worker.rollback()
    assert summary["receipts"] == 50
    # Once nothing holds it any more, it is an orphan.
    run(runner, "--as-of", AS_OF.isoformat())
    assert (live_id, "failed", INTERRUPTED_RUN_ERROR) in runs(pg_app)


def test_a_run_at_work_holds_its_row_against_the_sweep(
    pg_app: Flask, tmp_path: Path, monkeypatch: Any
) -> None:
    load(pg_app.test_cli_runner(), tmp_path, n=50)
    seen: list[str] = []
    count_records = engine._record_counts

    def sweep_first(*args: Any) -> Any:
        """Another process sweeps as this run starts its work, before it has written anything."""
        with time_machine.travel(utcnow() + LATER), db.session_scope() as other:
            mark_interrupted_runs(other)
        with db.session_scope() as other:
            seen.append(other.scalars(sa.select(Run.status).order_by(Run.id.desc()).limit(1)).one())
        return count_records(*args)

    monkeypatch.setattr(engine, "_record_counts", sweep_first)
    with pg_app.app_context():
        outcome = engine.run_reconciliation(as_of=AS_OF)
    assert seen == ["running"]
    assert (outcome.run_id, "finished", None) in runs(pg_app)
