"""Bulk seed for bench/web.py: N tickets with customers, codes, steps, dev tasks and billing, via COPY.

Rows are written with PostgreSQL COPY (psycopg), never one ORM object at a time: 100,000 tickets
and their 500,000 steps load in seconds.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from stdnum.br import cnpj as cnpj_lib
from werkzeug.security import generate_password_hash

from onboarding.search_text import customer_search_name

STEPS = ("contract", "dev_handoff", "validation", "orientation", "billing")
PREFIXES = ("Drogaria", "Farmácia", "Drogaria e Perfumaria", "Farmácia Popular", "Drogasil Franquia")
PLACES = (
    "São João", "Santa Luzia", "Vila Serena", "Boa Saúde", "Nova Esperança", "São Bento", "Central",
    "do Povo", "Bom Jesus", "Santo Antônio", "Paulista", "Jardim América", "Alvorada", "Primavera",
    "Coração de Maria", "Bela Vista", "São Lucas", "Ipiranga", "Monte Castelo", "Rio Branco",
)  # fmt: skip
SUFFIXES = ("Ltda", "Eireli", "S.A.", "ME", "Ltda EPP")
PASSWORD = "bench-password"


@dataclass
class Seeded:
    tickets: int
    agent_email: str
    cnpjs: list[str] = field(default_factory=list)  # a sample, digits
    names: list[str] = field(default_factory=list)  # a sample of distinctive name fragments
    contract_ticket_ids: list[int] = field(default_factory=list)  # open, at step "contract"


def make_cnpj(n: int) -> str:
    base = f"{n:08d}0001"
    return base + cnpj_lib.calc_check_digits(base)


def _copy(conn: psycopg.Connection, table: str, columns: tuple[str, ...], rows: Iterator[tuple]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def seed(conninfo: str, tickets: int, rng_seed: int = 7) -> Seeded:
    rng = random.Random(rng_seed)
    now = datetime.now(UTC)
    agent_hash = generate_password_hash(PASSWORD)
    result = Seeded(tickets=tickets, agent_email="agente1@bench.example")
    with psycopg.connect(conninfo) as conn:
        users = [(f"agente{i}@bench.example", "agent", f"Agente {i}") for i in range(1, 11)]
        users += [("dev@bench.example", "developer", "Dev"), ("fin@bench.example", "finance", "Fin")]
        _copy(
            conn,
            "user_account",
            ("id", "email", "name", "role", "password_hash", "active", "failed_logins", "created_at"),
            ((i + 1, e, n, r, agent_hash, True, 0, now) for i, (e, r, n) in enumerate(users)),
        )
        agent_ids = list(range(1, 11))

        def customers() -> Iterator[tuple]:
            for i in range(1, tickets + 1):
                name = f"{rng.choice(PREFIXES)} {rng.choice(PLACES)} {i} {rng.choice(SUFFIXES)}"
                yield (
                    i,
                    name,
                    "",
                    customer_search_name(name, ""),
                    make_cnpj(10_000_000 + i * 7),
                    "",
                    f"contato{i}@cliente.example",
                    "",
                    now,
                )

        _copy(
            conn,
            "customer",
            (
                "id",
                "name",
                "trade_name",
                "search_name",
                "cnpj",
                "contact_name",
                "contact_email",
                "contact_phone",
                "created_at",
            ),
            customers(),
        )

        def codes() -> Iterator[tuple]:
            code_id = 0
            for i in range(1, tickets + 1):
                for k in range(1 + (i % 5 == 0)):  # a fifth of the customers have two establishments
                    code_id += 1
                    yield (code_id, i, f"{1_000_000_000 + i * 10 + k}")

        _copy(conn, "establishment_code", ("id", "customer_id", "code"), codes())

        ticket_rows, step_rows, task_rows, billing_rows = [], [], [], []
        step_id = 0
        for i in range(1, tickets + 1):
            created = now - timedelta(minutes=rng.randint(10, 3 * 365 * 24 * 60))
            closed = rng.random() < 0.7
            done = 5 if closed else rng.choice((0, 0, 1, 2, 2, 3, 4, 5))
            current = STEPS[done] if done < 5 else None
            ticket_rows.append(
                (
                    i, f"EX-{i:06d}", f"Integração E-extrato - cliente {i}", "closed" if closed else "open",
                    current, i, rng.choice(agent_ids), "[]", created, created,
                    created + timedelta(days=20) if closed else None,
                )
            )  # fmt: skip
            for position, key in enumerate(STEPS, start=1):
                step_id += 1
                is_done = position <= done
                step_rows.append(
                    (
                        step_id, i, key, position, "done" if is_done else "pending",
                        rng.choice(agent_ids) if is_done else None,
                        created + timedelta(days=position) if is_done else None,
                        "ok" if is_done else "", "",
                    )
                )  # fmt: skip
            if done >= 2:
                status = "returned" if done >= 3 else rng.choice(("open", "taken", "enabled", "returned"))
                task_rows.append(
                    (len(task_rows) + 1, i, status, 11 if status != "open" else None, "[]", created)
                )
            if done == 5:
                registered = closed or rng.random() < 0.5
                billing_rows.append(
                    (len(billing_rows) + 1, i, "registered" if registered else "requested",
                     f"NF-{i}" if registered else None, 1, created)
                )  # fmt: skip
        columns = (
            "id", "number", "subject", "status", "current_step", "customer_id", "assignee_id", "flags",
            "created_at", "updated_at", "closed_at",
        )  # fmt: skip
        _copy(conn, "ticket", columns, iter(ticket_rows))
        step_columns = (
            "id", "ticket_id", "key", "position", "status", "completed_by_id", "completed_at", "notes",
            "evidence",
        )  # fmt: skip
        _copy(conn, "ticket_step", step_columns, iter(step_rows))
        task_columns = ("id", "ticket_id", "status", "assignee_id", "establishment_codes", "created_at")
        _copy(conn, "dev_task", task_columns, iter(task_rows))
        billing_columns = ("id", "ticket_id", "status", "invoice_ref", "requested_by_id", "created_at")
        _copy(conn, "billing_request", billing_columns, iter(billing_rows))
        for table in ("user_account", "customer", "establishment_code", "ticket", "ticket_step", "dev_task",
                      "billing_request"):  # fmt: skip
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        conn.commit()
        # Steady state, as autovacuum leaves a live database: statistics and the visibility map
        # (without it the queue count cannot be answered from the index alone).
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return sample(conninfo, result)


def sample(conninfo: str, into: Seeded | None = None) -> Seeded:
    """What the scenarios need from a seeded database: CNPJs, name fragments, tickets at step 1."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT cnpj, name FROM customer ORDER BY random() LIMIT 200").fetchall()
        tickets = conn.execute("SELECT count(*) FROM ticket").fetchone()[0]  # type: ignore[index]
        at_contract = conn.execute(
            "SELECT id FROM ticket WHERE status = 'open' AND current_step = 'contract' ORDER BY random()"
        ).fetchall()
    result = into or Seeded(tickets=tickets, agent_email="agente1@bench.example")
    result.cnpjs = [row[0] for row in rows]
    # "Luzia 482" of "Drogaria Santa Luzia 4821 Ltda": a word and the start of a number, as typed.
    result.names = [m.group(1)[:-1] for row in rows if (m := re.search(r"(\w+ \d{2,}) ", row[1]))]
    result.contract_ticket_ids = [row[0] for row in at_contract]
    return result
