"""`demo seed` gives the demo customer reconciled and divergent sales, once."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask

from tests.reconciliation_db.helpers import counts


def test_demo_seed_reconciles_a_customer_once(app: Flask, runner: Any) -> None:
    first = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == 0, first.output
    recon = json.loads(first.output.strip().splitlines()[-1])["reconciliation"]
    assert recon["receipts_inserted"] > 100
    assert recon["sales"]["matched"] > 0 and recon["sales"]["divergent"] > 0
    after_first = counts(app)
    second = runner.invoke(args=["demo", "seed"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.output.strip().splitlines()[-1])["reconciliation"]["receipts_inserted"] == 0
    assert counts(app) == after_first
