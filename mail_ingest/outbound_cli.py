"""`flask --app wsgi mail send-outbox [--now]`: one pass of the outbox, a JSON summary line."""

from __future__ import annotations

import json

import click

from mail_ingest.cli import mail_cli
from mail_ingest.outbound import send_due
from onboarding.cli import domain_errors_exit


@mail_cli.command("send-outbox")
@click.option("--now", "ignore_backoff", is_flag=True, help="Ignora a espera entre tentativas.")
@domain_errors_exit
def send_outbox(ignore_backoff: bool) -> None:
    """Envia os e-mails da caixa de saída que estão no prazo (o que o job periódico faz)."""
    summary = send_due(ignore_backoff=ignore_backoff)
    click.echo(json.dumps(summary, ensure_ascii=False))
