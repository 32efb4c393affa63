"""Runs one periodic job under its lock (the function `rq cron` enqueues)."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from onboarding.jobs import PERIODIC, exclusive, job

log = logging.getLogger(__name__)


def _find(name: str) -> Any:
    module_name = name.rpartition(".")[0]
    importlib.import_module(module_name)
    for item in PERIODIC:
        if f"{item.func.__module__}.{item.func.__name__}" == name:
            return item
    raise LookupError(f"no periodic job named {name}")


@job
def run_periodic(name: str) -> Any:
    item = _find(name)
    with exclusive(name, timeout=item.lock_timeout) as acquired:
        if not acquired:
            log.info("periodic job %s still running elsewhere; skipped", name)
            return None
        return item.func()
