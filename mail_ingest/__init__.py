"""Mail: the support mailbox in (poll, import, triage, quarantine), the outbox out.

`init_app(app)` registers the blueprints, the `mail` CLI group, the step notifications and the
ticket timeline contribution; `seed_demo()` imports the sample mails of `samples/` (idempotent).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from flask import Flask, current_app

# Imported for their side effect: the periodic poll and outbox jobs register for `rq cron`.
from mail_ingest import jobs as _jobs  # noqa: F401
from mail_ingest import outbound as outbound

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"


def init_app(app: Flask) -> None:
    import mail_ingest.outbound_cli  # noqa: F401  (attaches `mail send-outbox` to the group)
    from mail_ingest import api, inbound_cli, outbound_views, ticket_mail, views  # noqa: F401
    from mail_ingest.cli import mail_cli
    from onboarding import services

    app.register_blueprint(views.bp)
    app.register_blueprint(outbound_views.bp)
    if "mail" not in app.cli.commands:
        app.cli.add_command(mail_cli)
    services.on_step_completed(ticket_mail.notify_step_completed)
    from mail_ingest.actions import integrator_recipients

    ticket_mail.set_recipient_resolver("integrator", integrator_recipients)
    _register_web_hooks()


def _register_web_hooks() -> None:
    """The ticket page's mail timeline and the top bar links, when the web part offers its hooks
    (merged separately)."""
    try:
        hooks = importlib.import_module("onboarding.web_hooks")
    except ImportError:
        return
    from mail_ingest.timeline import conversation_panel, outbound_entries, timeline_entries

    hooks.register_timeline_source(timeline_entries)
    hooks.register_timeline_source(outbound_entries)
    hooks.register_ticket_panel(conversation_panel)
    if hasattr(hooks, "register_nav_item"):
        hooks.register_nav_item("Triagem de e-mails", "mail_web.triage", ("agent", "admin"))
        hooks.register_nav_item("Quarentena", "mail_web.quarantine", ("agent", "admin"))


def seed_demo() -> dict[str, Any]:
    """Import the sample mails (Boavista requests, replies, noise) as if they came from the mailbox."""
    from mail_ingest import importer
    from mail_ingest.pipeline import Tally, ingest_batch
    from mail_ingest.process import IngestSettings
    from onboarding import db

    if not SAMPLES_DIR.is_dir():
        return {"samples": 0}
    files = sorted(p for p in SAMPLES_DIR.rglob("*.eml") if p.is_file())
    settings = IngestSettings.from_config(current_app.config)
    tally = Tally()
    session = db.new_session()
    try:
        ingest_batch(
            session, list(importer.messages([importer.Source(p, "eml") for p in files])), settings, tally
        )
    finally:
        session.close()
    return {"samples": len(files), **{k: v for k, v in tally.items() if v}}
