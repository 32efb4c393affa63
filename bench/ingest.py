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
from tests.mail_ingest.ingest_helpers import make_cnpj, onboarding_mail  # noqa: E402
from tests.support.dovecot import DovecotServer  # noqa: E402

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARGET_RATE = 300.0
TARGET_RATIO = 0.25
FETCH_BATCH = 100
_MESSAGE_ID = re.compile(rb"^Message-I[Dd]:[^\r\n]*(\r?\n[ \t][^\r\n]*)*", re.MULTILINE)


def corpus(count: int, seed: int = 5000) -> list[bytes]:
    """Realistic support mail: the sample mails (each with its own Message-ID) and, one in five,
    an onboarding request for a new customer (a ticket opened per mail, the heaviest path)."""
    rng = random.Random(seed)
    samples = [p.read_bytes() for p in sorted((ROOT / "samples").glob("*.eml"))]
    messages: list[bytes] = []
    for index in range(count):
        if index % 5 == 0:
            messages.append(onboarding_mail(make_cnpj(rng), name=f"Drogaria Bench {index} Ltda"))
            continue
        raw = samples[index % len(samples)]
        new_id = f"Message-ID: <bench.{index}.{uuid.uuid4().hex}@bench.example>".encode()
        raw, found = _MESSAGE_ID.subn(new_id, raw, count=1)
        if not found:
            raw = new_id + b"\r\n" + raw
        messages.append(raw)
    return messages


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


def full_ingest(server: DovecotServer, url: str) -> tuple[dict[str, int], float]:
    from mail_ingest.jobs import poll_mailbox

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "REDIS_URL": None, **server.env("none")})
    with app.app_context():
        started = time.perf_counter()
        tally = poll_mailbox()
        elapsed = time.perf_counter() - started
    app.extensions["db_engine"].dispose()
    return dict(tally), elapsed


def sqlite_database(workdir: Path) -> str:
    url = f"sqlite:///{workdir / 'bench.db'}"
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
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)

    messages = corpus(args.messages)
    size = sum(len(m) for m in messages)
    print(f"corpus: {len(messages)} messages, {size / len(messages) / 1024:.1f} KiB on average")
    with DovecotServer() as server, tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        seed(server, messages)
        print(f"seeded Dovecot by IMAP APPEND in {time.perf_counter() - started:.1f} s")

        read, fetch_s = bare_fetch(server, parse=False)
        read_parse, floor_s = bare_fetch(server, parse=True)
        fetch_rate, floor_rate = read / fetch_s, read_parse / floor_s
        print(f"bare BODY.PEEK[] fetch        : {read:6d} msgs in {fetch_s:6.2f} s = {fetch_rate:8.0f} msg/s")
        print(f"fetch + parse + get_body floor: {read_parse:6d} msgs in {floor_s:6.2f} s = {floor_rate:8.0f} msg/s")

        for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
            pg_name = None
            if database == "sqlite":
                url = sqlite_database(Path(workdir))
            else:
                url, pg_name = postgres_database()
            try:
                tally, elapsed = full_ingest(server, url)
            finally:
                if pg_name:
                    drop_postgres(pg_name)
            rate = tally.get("fetched", 0) / elapsed
            verdict_rate = "ok" if rate >= TARGET_RATE else "BELOW TARGET"
            ratio = rate / floor_rate
            verdict_ratio = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
            print(
                f"full ingest, {database:10s}   : {tally.get('fetched', 0):6d} msgs in {elapsed:6.2f} s = "
                f"{rate:8.0f} msg/s  ({verdict_rate}: >= {TARGET_RATE:.0f}); "
                f"{ratio:.2f}x the floor ({verdict_ratio}: >= {TARGET_RATIO}x)"
            )
            counts = {k: v for k, v in tally.items() if k in ("stored", "ticket", "joined", "reply", "triage")}
            print(f"    {counts}")


if __name__ == "__main__":
    main()
