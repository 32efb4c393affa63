"""`flask --app wsgi mail poll --once` and `mail import PATH...`."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.mail_ingest.ingest_helpers import (
    ROOT,
    configure,
    mail,
    messages,
    new_message_id,
    row_counts,
    sample,
    tickets,
)
from tests.support.dovecot import DovecotServer

# The database plays no part here: run on SQLite only (the app fixture runs both otherwise).
DB_AGNOSTIC = pytest.mark.parametrize("app", ["sqlite"], indirect=True)


def _last_json(output: str) -> dict[str, Any]:
    return json.loads(output.strip().splitlines()[-1])


def test_poll_once_prints_counts_as_json_on_the_last_line(
    app: Flask, runner: Any, imap_mailbox: DovecotServer
) -> None:
    configure(app, imap_mailbox)
    imap_mailbox.append(sample("01"))
    imap_mailbox.append(sample("11"))

    result = runner.invoke(args=["mail", "poll", "--once"])

    assert result.exit_code == 0, result.output
    counts = _last_json(result.output)
    assert counts["fetched"] == 2 and counts["ticket"] == 1 and counts["triage"] == 1
    again = runner.invoke(args=["mail", "poll", "--once"])
    assert _last_json(again.output)["fetched"] == 0


@DB_AGNOSTIC
def test_poll_without_a_mailbox_configured_fails_with_one_line(app: Flask, runner: Any) -> None:
    app.config["IMAP_HOST"] = None
    result = runner.invoke(args=["mail", "poll", "--once"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "erro: IMAP_HOST não está configurado: não há caixa postal para ler."
    ]


def test_poll_once_as_a_process_over_tls_with_settings_from_the_environment(
    pg_url: str, imap_mailbox: DovecotServer, tmp_path: Path
) -> None:
    imap_mailbox.append(sample("01"))
    env = {
        **os.environ,
        **imap_mailbox.env("ssl"),
        "DATABASE_URL": pg_url,
        "SSL_CERT_FILE": str(imap_mailbox.cert_path),  # the test CA, as a deployment would install it
        "IMAP_PROCESSED_FOLDER": "Processadas",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "mail", "poll", "--once"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert _last_json(done.stdout)["fetched"] == 1
        assert imap_mailbox.uids("INBOX") == [] and len(imap_mailbox.uids("Processadas")) == 1
    finally:
        from onboarding import create_app
        from tests.fixtures_app import app_config, wipe

        wipe(create_app(app_config(pg_url, tmp_path)))


def test_import_takes_eml_maildir_and_mbox_through_the_same_pipeline(
    app: Flask, runner: Any, tmp_path: Path
) -> None:
    eml = tmp_path / "pedido.eml"
    eml.write_bytes(sample("01"))
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    maildir_ids = [new_message_id("md") for _ in range(2)]
    for message_id in maildir_ids:
        maildir.add(mail(subject="do Maildir", message_id=message_id))
    mbox_path = tmp_path / "caixa.mbox"
    box = mailbox.mbox(mbox_path, create=True)
    box.add(sample("11"))
    box.add(sample("13"))
    box.flush()
    box.close()

    result = runner.invoke(args=["mail", "import", str(eml), str(tmp_path / "Maildir"), str(mbox_path)])

    assert result.exit_code == 0, result.output
    counts = _last_json(result.output)
    assert counts["read"] == 5 and counts["stored"] == 5 and counts["ticket"] == 1
    assert {m.source for m in messages(app)} == {"import"}
    assert len(tickets(app)) == 1
    rerun = runner.invoke(args=["mail", "import", str(eml), str(tmp_path / "Maildir"), str(mbox_path)])
    assert _last_json(rerun.output)["duplicates"] == 5
    assert row_counts(app) == (5, 5, 1)


def test_import_of_the_same_mail_fetched_over_imap_is_a_duplicate(
    app: Flask, runner: Any, imap_mailbox: DovecotServer, tmp_path: Path
) -> None:
    configure(app, imap_mailbox)
    imap_mailbox.append(sample("01"))  # Dovecot stores it with CRLF: other bytes, same Message-ID
    runner.invoke(args=["mail", "poll", "--once"])
    eml = tmp_path / "copia.eml"
    eml.write_bytes(sample("01"))

    result = runner.invoke(args=["mail", "import", str(eml)])

    assert _last_json(result.output)["duplicates"] == 1
    assert row_counts(app) == (1, 1, 1)


@DB_AGNOSTIC
def test_import_refuses_a_bad_path_before_reading_anything(app: Flask, runner: Any, tmp_path: Path) -> None:
    good = tmp_path / "ok.eml"
    good.write_bytes(sample("01"))

    result = runner.invoke(args=["mail", "import", str(good), str(tmp_path / "nao-existe.mbox")])

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"erro: {tmp_path / 'nao-existe.mbox'}: não existe"]
    assert row_counts(app) == (0, 0, 0)
