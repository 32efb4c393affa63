"""`demo seed` leaves one customer with a living integration: chart, divergences, triage, a correction."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import Flask

from onboarding import db
from onboarding.models import Customer, StepKey, Ticket
from reconciliation.integration_models import DivergenceTriage, Integration
from reconciliation.lifecycle_demo import DEMO_CNPJ
from reconciliation.models import StoredReceipt


def test_demo_seed_runs_an_integration_and_is_idempotent(app: Flask, runner: Any) -> None:
    first = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.output.strip().splitlines()[-1])["reconciliation"]["integration"]
    assert summary["receipts"] > 100 and summary["divergences"] > 0 and summary["corrections"] == 1
    with app.app_context():
        session = db.session()
        ticket = session.scalars(sa.select(Ticket).join(Customer).where(Customer.cnpj == DEMO_CNPJ)).one()
        assert ticket.current_step == StepKey.VALIDATION  # left for the visitor to validate
        integration = session.scalars(sa.select(Integration).where(Integration.ticket_id == ticket.id)).one()
        assert integration.status == "enabled" and integration.validation_run_id is not None
        rows = session.scalars(
            sa.select(DivergenceTriage).where(DivergenceTriage.from_validation.is_(True))
        ).all()
        assert any(r.responsible for r in rows) and any(r.responsible is None for r in rows)
        queued = session.scalars(sa.select(StoredReceipt).where(StoredReceipt.resend_pending.is_(True))).all()
        assert len(queued) == 1
        counts = (len(rows), session.scalar(sa.select(sa.func.count()).select_from(StoredReceipt)))
    again = runner.invoke(args=["demo", "seed"])
    assert again.exit_code == 0, again.output
    seeded_again = json.loads(again.output.strip().splitlines()[-1])["reconciliation"]["integration"]
    assert seeded_again["already_seeded"] is True
    with app.app_context():
        session = db.session()
        rows = session.scalars(
            sa.select(DivergenceTriage).where(DivergenceTriage.from_validation.is_(True))
        ).all()
        assert (len(rows), session.scalar(sa.select(sa.func.count()).select_from(StoredReceipt))) == counts
