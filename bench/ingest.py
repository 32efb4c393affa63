"""Mail ingest benchmark (SPEC section 9): a 5,000-message backlog in a private Dovecot.

Prints, in one run and against the same messages:
- the floor of any Python ingester: a bare imapclient `BODY.PEEK[]` fetch, and that fetch plus
  `email.message_from_bytes(policy=default)` and `get_body()` on each message;
- a full ingest (`poll_mailbox()`: size check, fetch, raw storage, parse, classify, tickets,
  \\Seen flags, cursor) on SQLite and on PostgreSQL, each into a fresh database.

Never fails a build: it prints figures and the targets next to them.
Run as root (the private Dovecot switches users): `python bench/ingest.py [--messages 5000]`.
"""

from __future__ import annotations

import argparse
import email
import os
import random
import re
import sys
import tempfile
import time
import uuid
from email import policy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from imapclient import IMAPClient  # noqa: E402

from onboarding import create_app  # noqa: E402
from onboarding.migrate import upgrade  # noqa: E402
from tests.mail_ingest.ingest_helpers import mail, make_cnpj, onboarding_mail  # noqa: E402
from tests.support.dovecot import DovecotServer  # noqa: E402

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARGET_RATE = 300.0
TARGET_RATIO = 0.25
FETCH_BATCH = 100
_MESSAGE_ID = re.compile(rb"^Message-I[Dd]:[^\r\n]*(\r?\n[ \t][^\r\n]*)*", re.MULTILINE)


def corpus(count: int, mix: str = "desk", seed: int = 5000) -> list[bytes]:
    """Mail as a support mailbox gets it.

    `desk` (default), per 100 messages: 10 onboarding requests for new customers (a ticket each),
    5 requests re-sent for known customers (joined), 35 replies in the thread of a request,
    10 auto-replies and bounces, 40 questions and other mail (triage); built from the sample
    mails, each with its own Message-ID. `onboarding`: every message is a request for a new
    customer (the heaviest path: a ticket opened per message).
    """
    rng = random.Random(seed)
    samples = {p.name[:2]: p.read_bytes() for p in sorted((ROOT / "samples").glob("*.eml"))}
    requests = [samples[k] for k in ("01", "02", "03", "04", "05", "06", "07", "09", "15", "16")]
    automatic = [samples["12"], samples["13"]]
    others = [samples["10"], samples["11"]]
    messages: list[bytes] = []
    opened: list[str] = []
    for index in range(count):
        slot = index % 100
        if mix == "onboarding" or slot < 10:
            message_id = _unique_id(index)
            opened.append(message_id)
            messages.append(
                onboarding_mail(make_cnpj(rng), name=f"Drogaria Bench {index} Ltda", message_id=message_id)
            )
        elif slot < 15:
            messages.append(_renamed(requests[index % len(requests)], index))
        elif slot < 50 and opened:
            parent = rng.choice(opened[-50:])
            messages.append(
                mail(
                    sender=f"cliente{index}@farmacia.example",
                    subject="Re: Novo cliente E-extrato",
                    body="Bom dia! Seguem os dados que faltavam.\n\n> mensagem anterior\n" * 3,
                    message_id=_unique_id(index),
                    headers={"In-Reply-To": parent, "References": parent},
                )
            )
        elif slot < 60:
            messages.append(_renamed(automatic[index % 2], index))
        else:
            messages.append(_renamed(others[index % 2], index))
    return messages


def _unique_id(index: int) -> str:
    return f"<bench.{index}.{uuid.uuid4().hex}@bench.example>"


def _renamed(raw: bytes, index: int) -> bytes:
    new_id = f"Message-ID: {_unique_id(index)}".encode()
    raw, found = _MESSAGE_ID.subn(new_id, raw, count=1)
    return raw if found else new_id + b"\r\n" + raw


def seed(server: DovecotServer, messages: list[bytes]) -> None:
    with server.session() as client:
        for start in range(0, len(messages), 200):
            client.multiappend("INBOX", messages[start : start + 200])


def bare_fetch(server: DovecotServer, parse: bool) -> tuple[int, float]:
    started = time.perf_counter()
    client = IMAPClient(server.host, port=server.port, ssl=False)
    client.login(server.user, server.password)
    client.select_folder("INBOX", readonly=True)
    uids = client.search("ALL")
    read = 0
    for start in range(0, len(uids), FETCH_BATCH):
        for data in client.fetch(uids[start : start + FETCH_BATCH], ["BODY.PEEK[]"]).values():
            read += 1
            if parse:
                message = email.message_from_bytes(data[b"BODY[]"], policy=policy.default)
                message.get_body()  # type: ignore[attr-defined]
    client.logout()
    return read, time.perf_counter() - started


def full_ingest(server: DovecotServer, url: str, workers: int | None) -> tuple[dict[str, int], float]:
    from mail_ingest.jobs import poll_mailbox

    config = {"DATABASE_URL": url, "SECRET_KEY": "bench", "REDIS_URL": None, **server.env("none")}
    app = create_app({**config, "MAIL_ANALYSIS_WORKERS": workers})
    with app.app_context():
        started = time.perf_counter()
        tally = poll_mailbox()
        elapsed = time.perf_counter() - started
    app.extensions["db_engine"].dispose()
    return dict(tally), elapsed


def sqlite_database(workdir: Path, name: str) -> str:
    url = f"sqlite:///{workdir / name}"
    upgrade(url)
    return url


def postgres_database() -> tuple[str, str]:
    name = f"bench_ingest_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    return url, name


def drop_postgres(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--mix", choices=("desk", "onboarding"), default="desk")
    parser.add_argument(
        "--workers",
        default="0,default",
        help="analysis worker settings to run, comma separated: 0 = inline, default = the app's default",
    )
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)

    messages = corpus(args.messages, args.mix)
    size = sum(len(m) for m in messages)
    print(f"corpus ({args.mix}): {len(messages)} messages, {size / len(messages) / 1024:.1f} KiB on average")
    print(f"cpus: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")
    with DovecotServer() as server, tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        seed(server, messages)
        print(f"seeded Dovecot by IMAP APPEND in {time.perf_counter() - started:.1f} s")

        read, fetch_s = bare_fetch(server, parse=False)
        print(
            f"bare BODY.PEEK[] fetch          : {read:6d} msgs in {fetch_s:6.2f} s = "
            f"{read / fetch_s:8.0f} msg/s"
        )
        floor = _floor(server)
        runs = 0
        for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
            for workers_arg in [w.strip() for w in args.workers.split(",") if w.strip()]:
                workers = None if workers_arg == "default" else int(workers_arg)
                pg_name = None
                runs += 1
                if database == "sqlite":
                    url = sqlite_database(Path(workdir), f"bench{runs}.db")
                else:
                    url, pg_name = postgres_database()
                try:
                    tally, elapsed = full_ingest(server, url, workers)
                finally:
                    if pg_name:
                        drop_postgres(pg_name)
                after = _floor(server)
                # The machine may be shared: compare with the floor measured right before and after.
                adjacent = (floor + after) / 2
                floor = after
                rate = tally.get("fetched", 0) / elapsed
                label = f"{database}, " + ("inline" if workers == 0 else f"workers={workers_arg}")
                print(
                    f"full ingest {label:19s}: {tally.get('fetched', 0):6d} msgs in {elapsed:6.2f} s = "
                    f"{rate:8.0f} msg/s ({_verdict(rate >= TARGET_RATE)} >= {TARGET_RATE:.0f}); "
                    f"{rate / adjacent:.2f}x the floor of {adjacent:.0f} msg/s "
                    f"({_verdict(rate / adjacent >= TARGET_RATIO)} >= {TARGET_RATIO}x)"
                )
                keys = ("stored", "ticket", "joined", "reply", "auto_reply", "bounce", "triage")
                print(f"    { ({k: tally.get(k, 0) for k in keys}) }")


def _floor(server: DovecotServer) -> float:
    read, elapsed = bare_fetch(server, parse=True)
    rate = read / elapsed
    print(f"fetch + parse + get_body floor  : {read:6d} msgs in {elapsed:6.2f} s = {rate:8.0f} msg/s")
    return rate


def _verdict(ok: bool) -> str:
    return "ok" if ok else "BELOW TARGET:"


if __name__ == "__main__":
    main()
