"""The scheduled poll (`rq cron`, every 30 s) and the lock that keeps two polls from overlapping.

With REDIS_URL the lock is a Redis lock with a short timeout that every batch extends, so a
killed poller frees it within a minute; without Redis it is an flock() on a file in instance/,
which the kernel releases when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import current_app

from mail_ingest.imap import ImapSettings, Poller
from mail_ingest.pipeline import Tally
from mail_ingest.process import IngestSettings
from onboarding import db
from onboarding.jobs import periodic, redis_connection

log = logging.getLogger(__name__)

POLL_INTERVAL = 30
LOCK_NAME = "mail-poll"
REDIS_LOCK_TIMEOUT = 90


class PollLocked(Exception):
    """Another poll of the mailbox is running."""


def _lock_name() -> str:
    """One lock per database and mailbox: the polls and imports that could overlap."""
    config = current_app.config
    key = f"{config['DATABASE_URL']}|{(config.get('SUPPORT_ADDRESS') or '').lower()}"
    return f"{LOCK_NAME}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


@contextlib.contextmanager
def poll_lock() -> Iterator[Callable[[], None]]:
    """Hold the mailbox lock; yields a heartbeat that keeps it. Raises PollLocked if taken."""
    name = _lock_name()
    if current_app.config.get("REDIS_URL"):
        lock = redis_connection().lock(f"desk:lock:{name}", timeout=REDIS_LOCK_TIMEOUT, blocking=False)
        if not lock.acquire():
            raise PollLocked("outra leitura da caixa postal está em andamento")
        try:
            yield lock.reacquire
        finally:
            with contextlib.suppress(Exception):
                lock.release()
        return
    path = Path(current_app.instance_path) / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PollLocked("outra leitura da caixa postal está em andamento") from None
        try:
            yield lambda: None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def poll_mailbox() -> Tally:
    """One pass over the configured mailbox (app context needed). Raises PollLocked,
    MailboxMisconfigured or MailboxUnavailable."""
    imap = ImapSettings.from_config(current_app.config)
    settings = IngestSettings.from_config(current_app.config)
    with poll_lock() as heartbeat:
        session = db.new_session()
        try:
            return Poller(session, imap, settings, heartbeat=heartbeat).run()
        finally:
            session.close()


@periodic(POLL_INTERVAL, lock_timeout=REDIS_LOCK_TIMEOUT)
def poll_mailbox_job() -> dict[str, Any] | None:
    """The cron entry: nothing to do without IMAP_HOST; a running poll means this one skips."""
    if not current_app.config.get("IMAP_HOST"):
        return None
    try:
        return dict(poll_mailbox())
    except PollLocked:
        log.info("mail poll skipped: another one is running")
        return None
