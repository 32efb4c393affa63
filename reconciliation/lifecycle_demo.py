"""The demo of `make run`: one customer with a living integration (called by `demo seed`).

The customer waiting at step 3 gets a week of ERP card receipts; the demo developer configures
and returns its integration (the first pass runs at once), the simulated integrator answers the
remessa with realistic divergences, the next pass makes the validation run, the demo agent
assigns part of the divergences and corrects a receipt, which is then queued for the next
remessa. The rest is left for whoever opens the demo. Idempotent: nothing is done twice.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from onboarding import db, services
from onboarding.models import Customer, DevTaskStatus, Role, StepKey, Ticket, User
from reconciliation import clock, corrections, csvformat, engine, importers, lifecycle, screens, synth, triage
from reconciliation.integration_models import DivergenceTriage, Integration, IntegrationStatus
from reconciliation.simulator import IntegratorSimulator

DEMO_CNPJ = "13186091000143"  # Drogaria Santa Luzia, at step 3 in onboarding.demo
DEMO_SEED = 2026
SIMULATOR_SEED = 7


def _demo_ticket(session: Any) -> Ticket | None:
    ticket = session.scalars(
        sa.select(Ticket).join(Customer).where(Customer.cnpj == DEMO_CNPJ).order_by(Ticket.id)
    ).first()
    if ticket is not None:
        return ticket
    return session.scalars(  # any ticket waiting at step 3 will do
        sa.select(Ticket).where(Ticket.current_step == StepKey.VALIDATION).order_by(Ticket.id)
    ).first()


def _user(session: Any, role: Role) -> User | None:
    return session.scalars(
        sa.select(User).where(User.role == role, User.active.is_(True)).order_by(User.id)
    ).first()


def seed() -> dict[str, Any]:
    conf = engine.settings()
    with db.session_scope() as session:
        ticket = _demo_ticket(session)
        agent, developer = _user(session, Role.AGENT), _user(session, Role.DEVELOPER)
        if ticket is None or agent is None or developer is None or ticket.dev_task is None:
            return {"integration": "sem chamado na etapa 3 para a demonstração"}
        existing = lifecycle.integration_for_ticket(session, ticket.id)
        if existing is not None and existing.status == IntegrationStatus.ENABLED:
            return {"integration": ticket.number, "already_seeded": True}
        ticket_id, task_id = ticket.id, ticket.dev_task.id
        codes = list(ticket.customer.establishment_codes)
        agent_id, developer_id = agent.id, developer.id

    today = clock.today(conf.tz)
    lookback = conf.lookback_days  # the receipts of the first remessa's window
    data = synth.generate(
        140,
        seed=DEMO_SEED,
        start_date=today - timedelta(days=lookback),
        days=lookback + 1,
        establishments=codes,
        fault_rate=0.04,
        faults=(synth.MISSING_AUTHORIZATION, synth.DUPLICATE_RECEIPT),
        tz=conf.tz,
    )
    # The ERP's own ids: unique across the whole desk, whatever other demo data exists.
    receipts = [replace(r, sale_id=f"SL-{r.sale_id}") for r in data.receipts]
    with tempfile.TemporaryDirectory(prefix="demo-vendas-") as folder:
        path = Path(folder) / "recebimento-cartoes-demo.csv"
        text = io.StringIO(newline="")
        csvformat.write_receipts_csv(receipts, text, delimiter=";")
        path.write_text(text.getvalue(), encoding="utf-8")
        with db.session_scope() as session:
            report = importers.import_sales_file(session, path, tz=conf.tz, source="demo")

    with db.session_scope() as session:  # the developer's part; the commit runs the first pass
        developer = session.get(User, developer_id)
        task = services.get_dev_task(session, task_id)
        if task.status == DevTaskStatus.OPEN:
            services.take_dev_task(session, developer, task_id)
        lifecycle.configure_integration(session, developer, ticket_id, establishment_codes=codes)
        services.return_dev_task(session, developer, task_id)
    with db.session_scope() as session:
        integration = lifecycle.integration_for_ticket(session, ticket_id)
        assert integration is not None
        integration_id = integration.id

    simulator = IntegratorSimulator(
        lifecycle.exchange_dir(),
        seed=SIMULATOR_SEED,
        tz=conf.tz,
        fault_rate=0.14,
        unidentified_rate=0.03,
        lost_rate=0.02,
        extra_sale_rate=0.6,
    )
    simulator.run_once()
    lifecycle.sync_integration(integration_id, trigger="manual")

    triaged = corrected = 0
    with db.session_scope() as session:
        agent = session.get(User, agent_id)
        rows = session.scalars(
            sa.select(DivergenceTriage)
            .where(DivergenceTriage.integration_id == integration_id, DivergenceTriage.resolved_at.is_(None))
            .order_by(DivergenceTriage.id)
        ).all()
        for detail in triage.details(session, rows[: len(rows) // 2]):
            triage.set_responsible(
                session, agent, detail.triage.id, detail.suggested, "Marcado na demonstração."
            )
            triaged += 1
        # The customer fixed one receipt typed wrong: queued for the next remessa.
        for detail in triage.details(session, rows):
            changes = _as_acquirer(detail)
            if detail.triage.kind == "sale" and changes:
                corrections.correct_sale(
                    session, detail.triage.record_key, changes, actor=agent, source="web", tz=conf.tz
                )
                corrected += 1
                break
    lifecycle.sync_integration(integration_id, trigger="manual")  # reconciles the corrected receipt
    with db.session_scope() as session:
        integration = session.get(Integration, integration_id)
        assert integration is not None
        counts = screens.triage_counts(session, integration_id)
        number = services.get_ticket(session, ticket_id).number
    return {
        "integration": number,
        "receipts": report.inserted,
        "divergences": counts["validation_total"],
        "triaged": triaged,
        "corrections": corrected,
    }


def _as_acquirer(detail: triage.Detail) -> dict[str, Any]:
    """The correction that makes the receipt say what the acquirer says (empty if unknown)."""
    if not detail.rows or not detail.kinds:
        return {}
    row = detail.rows[0]
    values = {
        "authorization_code": row.authorization_code,
        "nsu": row.nsu,
        "installments": row.installments,
        "brand": row.brand,
        "payment_type": row.payment_type,
        "amount": csvformat.format_amount(row.sale_amount_cents),
    }
    if any(kind not in values or values[kind] in (None, "") for kind in detail.kinds):
        return {}
    return {kind: values[kind] for kind in detail.kinds}
