"""Reconciliation of ERP card receipts against the integrator's retorno (SPEC sections 6-8)."""

from __future__ import annotations

from flask import Flask

# Imported for their side effects: the integration tables (Alembic sees them through
# `reconciliation.models`) and the periodic sync job registered for `rq cron`.
from reconciliation import integration_models as integration_models
from reconciliation import schedule as schedule


def init_app(app: Flask) -> None:
    """Register the `recon` CLI group and the reconciliation API endpoints."""
    from reconciliation import api, cli  # noqa: F401  (api registers its /api/v1 endpoints)

    app.cli.add_command(cli.recon_cli)
    _init_lifecycle(app)


def _init_lifecycle(app: Flask) -> None:
    """The integration lifecycle: CLI, screens, step 3 guard, first run hook, mail data."""
    import reconciliation.lifecycle_cli  # noqa: F401  (attaches `recon sync` and `recon simulate-integrator`)
    from mail_ingest.templates import add_context_provider
    from onboarding import services
    from onboarding.models import StepKey
    from onboarding.views import register_timeline_source
    from reconciliation import lifecycle, timeline, views

    services.add_step_guard(StepKey.VALIDATION, lifecycle.validation_guard)
    services.on_dev_task_returned(lifecycle.on_task_returned)
    add_context_provider(lifecycle.mail_problems)
    register_timeline_source(timeline.integration_timeline)
    views.init_app(app)


def seed_demo() -> dict[str, object]:
    """Demo sales and retorno for `demo seed`, reconciled; and a customer whose integration lives
    (configured, returned, answered by the simulated integrator, partly triaged, one correction)."""
    from reconciliation.demo import seed_demo as seed
    from reconciliation.lifecycle_demo import seed as seed_integration

    summary = seed()
    summary["integration"] = seed_integration()
    return summary
