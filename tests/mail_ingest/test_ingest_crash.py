"""Crash safety: the poller process is SIGKILLed at random points while it ingests 300 messages,
ten times, and restarted; in the end every message is stored once and every onboarding mail has
exactly one ticket."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import func, select

from mail_ingest.inbound_models import ImapPendingAction, InboundMessage, InboundRaw, InboundStatus
from onboarding.models import Customer, Ticket
from tests.mail_ingest.ingest_helpers import (
    ROOT,
    fresh_session,
    mail,
    make_cnpj,
    new_message_id,
    onboarding_mail,
)
from tests.support.dovecot import DovecotServer

TOTAL = 300
KILLS = 10


def _corpus(rng: random.Random) -> tuple[list[bytes], dict[str, str], dict[str, str]]:
    """300 mails: onboarding requests, replies to them, questions, auto-replies, no Message-ID.

    Returns the raw mails, onboarding Message-ID -> CNPJ, reply Message-ID -> parent Message-ID.
    """
    raws: list[bytes] = []
    onboarding: dict[str, str] = {}
    replies: dict[str, str] = {}
    while len(raws) < TOTAL:
        roll = rng.random()
        if roll < 0.5 or not onboarding:
            cnpj = make_cnpj(rng)
            while cnpj in onboarding.values():
                cnpj = make_cnpj(rng)
            message_id = new_message_id("onb")
            onboarding[message_id] = cnpj
            raws.append(onboarding_mail(cnpj, name=f"Drogaria {len(raws)} Ltda", message_id=message_id))
        elif roll < 0.7:
            parent = rng.choice(list(onboarding))
            message_id = new_message_id("re")
            replies[message_id] = parent
            raws.append(mail(subject="Re: cadastro", message_id=message_id, headers={"In-Reply-To": parent}))
        elif roll < 0.85:
            raws.append(mail(subject=f"Dúvida {len(raws)}", body="Como funciona a conciliação?"))
        elif roll < 0.93:
            raws.append(mail(subject="Resposta automática", headers={"Auto-Submitted": "auto-replied"}))
        else:
            raws.append(mail(subject=f"Sem identificador {len(raws)}", message_id=""))
    return raws, onboarding, replies


def _poller(app: Flask, server: DovecotServer) -> subprocess.Popen[bytes]:
    env = {**os.environ, **server.env("none"), "DATABASE_URL": app.config["DATABASE_URL"]}
    env["SECRET_KEY"] = app.config["SECRET_KEY"]
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "mail", "poll", "--once"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_sigkill_at_random_points_never_loses_or_duplicates(app: Flask, imap_mailbox: DovecotServer) -> None:
    rng = random.Random(20261127)
    raws, onboarding, replies = _corpus(rng)
    with imap_mailbox.session() as client:
        for raw in raws:
            client.append("INBOX", raw)
    engine = sa.create_engine(app.config["DATABASE_URL"])
    thresholds = sorted(rng.sample(range(1, TOTAL - 10), KILLS))
    killed = 0
    orphans: set[int] = set()
    try:
        for threshold in thresholds:
            process = _poller(app, imap_mailbox)
            while process.poll() is None and _stored(engine) < threshold:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.03))
            if process.poll() is None:
                workers = _children(process.pid)  # the analysis pool, for a backlog this size
                process.kill()
                killed += 1
                orphans.update(workers)
            process.wait()
        finish = _poller(app, imap_mailbox)
        _, errors = finish.communicate(timeout=120)
        assert finish.returncode == 0, errors.decode()
    finally:
        engine.dispose()
    with fresh_session(app) as session:
        rows = session.scalars(select(InboundMessage)).all()
        assert len(rows) == TOTAL
        assert len({r.message_id for r in rows}) == TOTAL
        assert session.scalar(select(func.count()).select_from(InboundRaw)) == TOTAL
        assert all(r.status == InboundStatus.PROCESSED for r in rows)
        assert session.scalars(select(ImapPendingAction)).all() == []

        by_id = {r.message_id: r for r in rows}
        assert session.scalar(select(func.count()).select_from(Ticket)) == len(onboarding)
        for message_id, cnpj in onboarding.items():
            row = by_id[message_id]
            assert row.outcome == "ticket" and row.ticket_id is not None
            customer_tickets = session.scalars(
                select(Ticket.id).join(Customer).where(Customer.cnpj == cnpj)
            ).all()
            assert customer_tickets == [row.ticket_id]
        for message_id, parent in replies.items():
            assert by_id[message_id].ticket_id == by_id[parent].ticket_id
    assert all(b"\\Seen" in m.flags for m in imap_mailbox.fetch_all())
    assert killed >= KILLS - 2  # the kills landed while the poller was working
    assert orphans, "the poller never ran analysis workers"
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in orphans) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in orphans if _alive(pid)], "analysis workers outlived the killed poller"


def _stored(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(InboundMessage)).scalar_one())


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(child) for child in text.split()}


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status
