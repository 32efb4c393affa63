"""Demo reconciliation data for `make run`: a customer's sales, reconciled and divergent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from onboarding import db
from reconciliation import clock, engine, importers, synth

# The establishment of the demo customer whose integration is enabled (onboarding.demo).
DEMO_ESTABLISHMENT = "4050607080"
DEMO_SEED = 20240601
DEMO_RECEIPTS = 160
DEMO_DAYS = 14


def seed_demo() -> dict[str, Any]:
    """Idempotent: the generated ids are fixed, so seeding again adds nothing."""
    conf = engine.settings()
    today = clock.today(conf.tz)
    data = synth.generate(
        DEMO_RECEIPTS,
        seed=DEMO_SEED,
        start_date=today - timedelta(days=DEMO_DAYS - 1),
        days=DEMO_DAYS,
        establishments=[DEMO_ESTABLISHMENT],
        fault_rate=0.25,
        as_of=today,
        lookback_days=conf.lookback_days,
        tz=conf.tz,
    )
    with db.session_scope() as session:
        sales = importers.import_records(
            session, importers.SALES, data.receipts, tz=conf.tz, name="demo", source="demo"
        )
        rows = importers.import_records(
            session, importers.RETORNO, data.statement_rows, tz=conf.tz, name="demo", source="demo"
        )
    outcome = engine.run_reconciliation(as_of=today, establishment=DEMO_ESTABLISHMENT, trigger="demo")
    return {
        "receipts_inserted": sales.inserted,
        "retorno_rows_inserted": rows.inserted,
        "sales": {k: v for k, v in outcome.counts.sales.items() if v},
    }
