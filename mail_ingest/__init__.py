"""Mail: the support mailbox in, the outbox out."""

from __future__ import annotations

from flask import Flask

# Imported for its side effect: the periodic outbox job registers itself for `rq cron`.
from mail_ingest import outbound as outbound


def init_app(app: Flask) -> None:
    import mail_ingest.outbound_cli  # noqa: F401  (attaches `mail send-outbox` to the group)
    from mail_ingest import outbound_views, ticket_mail
    from mail_ingest.cli import mail_cli
    from onboarding import services

    app.cli.add_command(mail_cli)
    app.register_blueprint(outbound_views.bp)
    services.on_step_completed(ticket_mail.notify_step_completed)
