"""The foundation's CLI: users create/token, demo seed, exit codes on bad input."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func, select

from onboarding import auth, db
from onboarding.models import ApiToken, Customer, Ticket, User


def test_users_create_and_token(app: Flask, runner: Any) -> None:
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "Maria@Example.com",
            "--role",
            "finance",
            "--password",
            "longenough",
        ]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["users", "token", "--email", "maria@example.com"])
    assert result.exit_code == 0
    token = result.output.strip()
    assert "\n" not in token and token.startswith("exd_")
    with app.app_context():
        session = db.session()
        user = auth.user_for_token(session, token)
        assert user is not None and user.role == "finance"
        stored = session.scalars(select(ApiToken.token_hash)).one()
        assert stored != token and stored == auth.hash_token(token)


def test_users_create_refuses_bad_input(app: Flask, runner: Any) -> None:
    short = runner.invoke(
        args=["users", "create", "--email", "a@b.com", "--role", "agent", "--password", "short"]
    )
    assert short.exit_code != 0 and "8 caracteres" in short.output
    missing = runner.invoke(args=["users", "token", "--email", "ghost@example.com"])
    assert missing.exit_code != 0 and "não encontrado" in missing.output
    with app.app_context():
        assert db.session().scalar(select(func.count(User.id))) == 0


def test_demo_seed_is_idempotent(app: Flask, runner: Any) -> None:
    first = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == 0, first.output
    with app.app_context():
        session = db.session()
        counts = (session.scalar(select(func.count(User.id))), session.scalar(select(func.count(Ticket.id))))
    second = runner.invoke(args=["demo", "seed"])
    assert second.exit_code == 0
    with app.app_context():
        session = db.session()
        assert (
            session.scalar(select(func.count(User.id))),
            session.scalar(select(func.count(Ticket.id))),
        ) == counts
        assert counts[0] == 4 and counts[1] >= 5
        statuses = {t.current_step for t in session.scalars(select(Ticket))}
        assert {"contract", "dev_handoff", "validation", "orientation", "billing"} <= statuses | {None}
        assert session.scalar(select(func.count(Customer.id))) >= 5


def test_password_lockout(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        auth.create_user(session, "lock@example.com", "agent", "correct-horse")
        for _ in range(auth.MAX_FAILED_LOGINS):
            user, reason = auth.authenticate(session, "lock@example.com", "wrong")
            assert user is None and reason
        user, reason = auth.authenticate(session, "lock@example.com", "correct-horse")
        assert user is None and reason is not None and "bloqueada" in reason
