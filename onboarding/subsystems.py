"""The packages that plug into the app shell. Each may define `init_app(app)`."""

from __future__ import annotations

import importlib
from types import ModuleType

SUBSYSTEMS = ("mail_ingest", "reconciliation")


def import_subsystems() -> list[ModuleType]:
    return [importlib.import_module(name) for name in SUBSYSTEMS]
