"""`rq cron onboarding.cron`: the periodic work of every package, each under a lock."""

from __future__ import annotations

from rq import cron

from onboarding.jobs import PERIODIC, QUEUE_NAME
from onboarding.periodic import run_periodic
from onboarding.subsystems import import_subsystems

import_subsystems()

for item in PERIODIC:
    name = f"{item.func.__module__}.{item.func.__name__}"
    cron.register(run_periodic, queue_name=QUEUE_NAME, args=(name,), interval=item.interval, name=name)
