"""Jobs are released only after the commit: in-process without Redis, through rq with it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from rq import SimpleWorker

from onboarding import create_app, db, jobs
from tests.fixtures_app import app_config, wipe
from tests.support.postgres import RedisTestDb

RAN: list[tuple[str, int]] = []


@jobs.job
def record_run(label: str, number: int) -> None:
    RAN.append((label, number))


@pytest.fixture
def redis_app(sqlite_url: str, tmp_path: Path, redis_db: RedisTestDb) -> Iterator[Flask]:
    app = create_app(app_config(sqlite_url, tmp_path, REDIS_URL=redis_db.url))
    yield app
    wipe(app)


def test_in_process_job_runs_only_after_commit(app: Flask) -> None:
    RAN.clear()
    with app.app_context():
        session = db.new_session()
        jobs.enqueue_after_commit(session, record_run, "rolled back", 1)
        session.rollback()
        assert RAN == []
        jobs.enqueue_after_commit(session, record_run, "committed", 2)
        assert RAN == []
        session.commit()
        session.close()
    assert RAN == [("committed", 2)]


def test_rq_job_enqueued_after_commit_with_retry(redis_app: Flask) -> None:
    RAN.clear()
    with redis_app.app_context():
        queue = jobs.queue()
        session = db.new_session()
        jobs.enqueue_after_commit(session, record_run, "dropped", 1)
        session.rollback()
        jobs.enqueue_after_commit(session, record_run, "queued", 7)
        assert queue.count == 0
        session.commit()
        session.close()
        assert queue.count == 1
        queued = queue.jobs[0]
        assert queued.args == ("queued", 7)
        assert queued.retries_left == len(jobs.RETRY_INTERVALS)
        assert RAN == []
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert RAN == [("queued", 7)]


def test_job_arguments_must_be_plain_values(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        with pytest.raises(TypeError, match="plain values"):
            jobs.enqueue_after_commit(session, record_run, object(), 1)


def test_exclusive_lock_in_redis(redis_app: Flask) -> None:
    name = f"test-{uuid.uuid4().hex}"
    with redis_app.app_context():
        with jobs.exclusive(name) as first:
            assert first is True
            with jobs.exclusive(name) as second:
                assert second is False
        with jobs.exclusive(name) as again:
            assert again is True


def test_exclusive_lock_in_process(app: Flask) -> None:
    with app.app_context(), jobs.exclusive("in-process") as first:
        assert first is True
        with jobs.exclusive("in-process") as second:
            assert second is False


@jobs.periodic(interval=30)
def periodic_probe() -> str:
    RAN.append(("periodic", 0))
    return "ran"


def test_periodic_job_never_overlaps(redis_app: Flask) -> None:
    from onboarding.periodic import run_periodic

    name = f"{periodic_probe.__module__}.{periodic_probe.__name__}"
    RAN.clear()
    with redis_app.app_context():
        with jobs.exclusive(name):
            assert run_periodic(name) is None  # another run holds the lock: skipped
        assert RAN == []
        assert run_periodic(name) == "ran"
    assert RAN == [("periodic", 0)]


def test_cron_config_registers_every_periodic_job() -> None:
    import subprocess
    import sys

    script = (
        "import rq.cron as c, onboarding.cron, onboarding.jobs as j;"
        "names = {d['name'] for d in c._job_data_registry};"
        "expected = {f'{p.func.__module__}.{p.func.__name__}' for p in j.PERIODIC};"
        "assert names == expected, (names, expected); print(len(names))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
