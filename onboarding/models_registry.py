"""Imports every package's models so the metadata (and Alembic) sees all tables."""

from __future__ import annotations

import importlib
import importlib.util

MODEL_MODULES = ("onboarding.models", "mail_ingest.models", "reconciliation.models")


def import_all_models() -> None:
    for name in MODEL_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
