"""Background jobs: queued inside a transaction, released only after it commits.

With REDIS_URL the jobs go to rq (ids and plain values as arguments, retried with back-off);
without it they run in-process right after the commit, each in a session of its own.
Periodic work is declared here with `periodic()` and registered for `rq cron` by onboarding.cron.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

QUEUE_NAME = "desk"
RETRY_INTERVALS = [10, 60, 300]


@dataclass(frozen=True)
class PendingJob:
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    job_id: str | None = None


@dataclass(frozen=True)
class PeriodicJob:
    func: Callable[..., Any]
    interval: int
    lock_timeout: int = field(default=600)


PERIODIC: list[PeriodicJob] = []
_worker_app: Flask | None = None
_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def job(func: Callable[P, R]) -> Callable[P, R]:
    """Make a function runnable in an rq worker: it gets an app context if none is active."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if has_app_context():
            return func(*args, **kwargs)
        with worker_app().app_context():
            return func(*args, **kwargs)

    return wrapper


def periodic(interval: int, lock_timeout: int = 600) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare a job for `rq cron`; it runs under a lock so two runs never overlap."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        PERIODIC.append(PeriodicJob(func, interval, lock_timeout))
        return func

    return decorate


def worker_app() -> Flask:
    global _worker_app
    if _worker_app is None:
        from onboarding import create_app

        _worker_app = create_app()
    return _worker_app


def enqueue_after_commit(
    db: Session, func: Callable[..., Any], *args: Any, job_id: str | None = None, **kwargs: Any
) -> None:
    """Queue `func(*args)` to run once `db` commits; dropped if it rolls back."""
    for value in (*args, *kwargs.values()):
        if not isinstance(value, str | int | float | bool | type(None) | list | tuple | dict):
            raise TypeError(f"job arguments must be plain values, got {type(value).__name__}")
    if not db.in_transaction():
        db.begin()  # so that a rollback() before any query still discards the job
    db.info.setdefault("pending_jobs", []).append(PendingJob(func, args, kwargs, job_id))


@event.listens_for(Session, "after_commit")
def _release_jobs(db: Session) -> None:
    pending: list[PendingJob] = db.info.pop("pending_jobs", [])
    if not pending:
        return
    app = current_app._get_current_object() if has_app_context() else worker_app()  # type: ignore[attr-defined]
    for item in pending:
        dispatch(app, item)


@event.listens_for(Session, "after_soft_rollback")
def _drop_jobs(db: Session, previous_transaction: Any) -> None:
    # Fires on every rollback() call, even when no DBAPI transaction had begun yet.
    if previous_transaction.parent is None:
        db.info.pop("pending_jobs", None)


def dispatch(app: Flask, item: PendingJob) -> None:
    redis_url = app.config.get("REDIS_URL")
    if redis_url:
        from rq import Retry

        queue(app).enqueue(
            item.func,
            *item.args,
            job_id=item.job_id,
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
            **item.kwargs,
        )
        return
    try:
        with app.app_context():
            item.func(*item.args, **item.kwargs)
    except Exception:  # in-process jobs must not break the request that committed
        log.exception("in-process job %s failed", getattr(item.func, "__name__", item.func))


def redis_connection(app: Flask | None = None) -> Any:
    from redis import Redis

    app = app or current_app
    conn = app.extensions.get("redis")
    if conn is None:
        conn = Redis.from_url(app.config["REDIS_URL"])
        app.extensions["redis"] = conn
    return conn


def queue(app: Flask | None = None) -> Any:
    from rq import Queue

    return Queue(QUEUE_NAME, connection=redis_connection(app))


@contextmanager
def exclusive(name: str, timeout: int = 600) -> Iterator[bool]:
    """Yield True when this process holds the lock `name`; False when another run holds it.

    Redis lock with REDIS_URL (across workers), a process-local lock otherwise.
    """
    if has_app_context() and current_app.config.get("REDIS_URL"):
        lock = redis_connection().lock(f"desk:lock:{name}", timeout=timeout, blocking=False)
        acquired = lock.acquire()
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    lock.release()
                except Exception:  # expired meanwhile; nothing to release
                    log.warning("lock %s expired before release", name)
        return
    with _local_locks_guard:
        local = _local_locks.setdefault(name, threading.Lock())
    acquired = local.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            local.release()
