"""The scheduled poll: `rq cron` config, an rq worker running it, the Redis lock, the demo seed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler

from mail_ingest import seed_demo
from mail_ingest.jobs import PollLocked, poll_lock
from onboarding import jobs
from onboarding.jobs import QUEUE_NAME
from tests.mail_ingest.ingest_helpers import SAMPLES, configure, mail, row_counts, tickets
from tests.support.dovecot import DovecotServer
from tests.support.postgres import RedisTestDb

JOB_NAME = "mail_ingest.jobs.poll_mailbox_job"

# The database plays no part here: run on SQLite only (the app fixture runs both otherwise).
DB_AGNOSTIC = pytest.mark.parametrize("app", ["sqlite"], indirect=True)


@pytest.fixture
def worker_app(app: Flask, redis_db: RedisTestDb) -> Iterator[Flask]:
    """The app an rq worker runs jobs in, with Redis for the queue and the lock."""
    app.config["REDIS_URL"] = redis_db.url
    previous, jobs._worker_app = jobs._worker_app, app
    try:
        yield app
    finally:
        jobs._worker_app = previous
        app.extensions.pop("redis", None)


def _run_cron_job(app: Flask, redis_db: RedisTestDb) -> Any:
    scheduler = CronScheduler(connection=redis_db.client)
    scheduler.load_config_from_file("onboarding.cron")
    [cron_job] = [j for j in scheduler.get_jobs() if j.name == JOB_NAME]
    queued = cron_job.enqueue(redis_db.client)
    SimpleWorker([Queue(QUEUE_NAME, connection=redis_db.client)], connection=redis_db.client).work(burst=True)
    queued.refresh()
    assert queued.get_status() == "finished", queued.latest_result()
    return queued.return_value()


@DB_AGNOSTIC
def test_rq_cron_polls_every_30_seconds_in_a_worker(
    worker_app: Flask, redis_db: RedisTestDb, imap_mailbox: DovecotServer
) -> None:
    configure(worker_app, imap_mailbox)
    imap_mailbox.append(mail(subject="agendada"))

    scheduler = CronScheduler(connection=redis_db.client)
    scheduler.load_config_from_file("onboarding.cron")
    [cron_job] = [j for j in scheduler.get_jobs() if j.name == JOB_NAME]
    assert cron_job.interval == 30

    result = _run_cron_job(worker_app, redis_db)

    assert result["fetched"] == 1
    assert row_counts(worker_app)[0] == 1


@DB_AGNOSTIC
def test_a_poll_holding_the_redis_lock_makes_the_next_one_skip(
    worker_app: Flask, redis_db: RedisTestDb, imap_mailbox: DovecotServer
) -> None:
    configure(worker_app, imap_mailbox)
    imap_mailbox.append(mail(subject="espera"))

    with worker_app.app_context(), poll_lock():
        assert _run_cron_job(worker_app, redis_db) is None  # skipped: another poll runs
        with pytest.raises(PollLocked), poll_lock():
            pass
    assert row_counts(worker_app)[0] == 0

    assert _run_cron_job(worker_app, redis_db)["fetched"] == 1


@DB_AGNOSTIC
def test_the_job_does_nothing_without_a_mailbox(worker_app: Flask, redis_db: RedisTestDb) -> None:
    worker_app.config["IMAP_HOST"] = None
    assert _run_cron_job(worker_app, redis_db) is None


def test_demo_seed_imports_the_samples_once(app: Flask) -> None:
    with app.app_context():
        first = seed_demo()
        second = seed_demo()

    samples = len(list(SAMPLES.glob("*.eml")))
    assert first["samples"] == samples and first["stored"] == samples
    assert second.get("stored", 0) == 0 and second["duplicates"] == samples
    assert len(tickets(app)) == first["ticket"] >= 10
