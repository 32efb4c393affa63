"""Lifecycle tests: users, a ticket at the dev hand-off, fast (but real) password hashes."""

from __future__ import annotations

from functools import partial

import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from onboarding import auth, db
from onboarding.models import User
from tests.lifecycle.helpers import ticket_at_validation
from tests.onboarding.helpers import make_users


@pytest.fixture(autouse=True)
def fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth, "generate_password_hash", partial(generate_password_hash, method="pbkdf2:sha256:1000")
    )


@pytest.fixture
def users(app: Flask) -> dict[str, int]:
    """One user per role (+ agent2, developer2), password `password123`; name -> id."""
    with app.app_context():
        return {name: u.id for name, u in make_users(db.session()).items()}


@pytest.fixture
def ticket_id(app: Flask, users: dict[str, int]) -> int:
    """A ticket whose dev task waits in the developers' queue (steps 1 and 2 done)."""
    with app.app_context():
        session = db.session()
        loaded = {name: session.get(User, uid) for name, uid in users.items()}
        return ticket_at_validation(session, loaded).id  # type: ignore[arg-type]
