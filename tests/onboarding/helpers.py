"""Shared helpers for workflow tests: users per role, a ticket, a database snapshot."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onboarding import auth, services
from onboarding.db import Base
from onboarding.models import Role, Ticket, User

VALID_CNPJ = "52601815000120"


def make_users(db: Session) -> dict[str, User]:
    users = {
        role.value: auth.create_user(db, f"{role.value}@test.example", role, "password123", name=role.value)
        for role in Role
    }
    users["agent2"] = auth.create_user(db, "agent2@test.example", Role.AGENT, "password123")
    users["developer2"] = auth.create_user(db, "developer2@test.example", Role.DEVELOPER, "password123")
    db.commit()
    return users


def open_ticket(db: Session, actor: User, **overrides: Any) -> Ticket:
    fields: dict[str, Any] = {
        "customer_name": "Drogaria Teste Ltda",
        "cnpj": VALID_CNPJ,
        "establishment_codes": ["1234567890"],
        "contact_email": "contato@drogariateste.example",
    }
    fields.update(overrides)
    ticket = services.open_ticket(db, actor, **fields)
    db.commit()
    return ticket


def snapshot(db: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a refused action changed nothing."""
    db.expire_all()
    result: dict[str, list[tuple[Any, ...]]] = {}
    for table in Base.metadata.sorted_tables:
        rows = db.execute(sa.select(table)).all()
        result[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return result


def advance_to(db: Session, users: dict[str, User], ticket: Ticket, steps_done: int) -> None:
    """Drive the ticket through its first `steps_done` steps the legitimate way."""
    from onboarding.models import StepKey

    for key in list(StepKey)[:steps_done]:
        if key == StepKey.VALIDATION:
            task = ticket.dev_task
            assert task is not None
            services.take_dev_task(db, users["developer"], task.id)
            services.enable_dev_task(db, users["developer"], task.id, ["1234567890"])
            services.return_dev_task(db, users["developer"], task.id)
        services.complete_step(db, users["agent"], ticket.id, key, notes=f"{key} ok")
        db.commit()
