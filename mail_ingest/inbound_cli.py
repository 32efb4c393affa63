"""`flask --app wsgi mail poll --once` and `mail import PATH...`: counts as JSON on the last line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import click
from flask import current_app

from mail_ingest import importer
from mail_ingest.cli import mail_cli
from mail_ingest.imap import MailboxMisconfigured, MailboxUnavailable
from mail_ingest.jobs import POLL_INTERVAL, PollLocked, poll_lock, poll_mailbox
from mail_ingest.pipeline import Incoming, Tally, ingest_batch
from mail_ingest.process import IngestSettings
from onboarding import db
from onboarding.cli import fail

POLL_KEYS = ("fetched", "stored", "duplicates", "ticket", "joined", "reply", "auto_reply", "bounce")
IMPORT_BATCH = 100
POLL_KEYS += ("triage", "quarantined", "oversize", "failed", "reprocessed", "resynced")


def counts_json(tally: Mapping[str, int], keys: Iterable[str] = POLL_KEYS, **extra: Any) -> str:
    counts = {key: int(tally.get(key, 0)) for key in keys}
    counts.update({k: int(v) for k, v in tally.items() if k not in counts})
    counts.update(extra)
    return json.dumps(counts, ensure_ascii=False, sort_keys=False)


@mail_cli.command("poll")
@click.option("--once", is_flag=True, help="One pass over the mailbox, then exit.")
@click.option("--interval", default=POLL_INTERVAL, show_default=True, help="Seconds between passes.")
def poll_command(once: bool, interval: int) -> None:
    """Read new mail from the support mailbox (IMAP_* settings)."""
    while True:
        try:
            tally = poll_mailbox()
        except MailboxMisconfigured as error:
            fail(str(error))
        except PollLocked as error:
            fail(str(error))
        except MailboxUnavailable as error:
            click.echo(counts_json(error.tally, error=str(error)))
            if once:
                fail(str(error))
            click.echo(f"aviso: {error}", err=True)
        else:
            click.echo(counts_json(tally))
        if once:
            return
        time.sleep(max(1, interval))


@mail_cli.command("import")
@click.argument("paths", nargs=-1, type=click.Path())
def import_command(paths: tuple[str, ...]) -> None:
    """Ingest .eml files, Maildir folders or mbox files, as if they came from the mailbox."""
    try:
        sources = importer.inspect(paths)
    except importer.ImportPathError as error:
        fail(str(error))
        return
    settings = IngestSettings.from_config(current_app.config)
    tally = Tally()
    tally["read"] += 0
    try:
        with poll_lock():
            session = db.new_session()
            try:
                batch: list[Incoming] = []
                for item in _progress(importer.messages(sources), importer.count(sources)):
                    tally["read"] += 1
                    batch.append(item)
                    if len(batch) >= IMPORT_BATCH:
                        ingest_batch(session, batch, settings, tally)
                        batch = []
                ingest_batch(session, batch, settings, tally)
            finally:
                session.close()
    except PollLocked as error:
        fail(str(error))
    except OSError as error:
        fail(f"leitura interrompida: {error}")
    click.echo(counts_json(tally, ("read", *POLL_KEYS[1:])))


def _progress(items: Iterator[Incoming], total: int) -> Iterator[Incoming]:
    if not sys.stderr.isatty():
        yield from items
        return
    with click.progressbar(items, length=total, label="Importando", file=sys.stderr) as bar:
        yield from bar
