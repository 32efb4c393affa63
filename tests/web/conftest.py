"""Web tests drive the app only through HTTP, each request in its own app context as in production.

(The shared `session` fixture keeps one app context open for the whole test, which would make every
request share `g`: the signed-in user and the CSRF token would leak between requests.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from onboarding import auth, db
from onboarding.models import User
from tests.onboarding.helpers import make_users, snapshot


@pytest.fixture(autouse=True)
def fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real werkzeug hashes, with few iterations: scrypt's 0.1 s per user would dominate the suite."""
    monkeypatch.setattr(
        auth, "generate_password_hash", partial(generate_password_hash, method="pbkdf2:sha256:1000")
    )


@contextmanager
def db_session(app: Flask) -> Iterator[Session]:
    """A session in an app context of its own, closed afterwards."""
    with app.app_context():
        yield db.session()


def db_snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    with db_session(app) as session:
        return snapshot(session)


def load_users(session: Session) -> dict[str, User]:
    """The users of `users`/make_users, keyed as make_users keys them (agent, developer, ..., agent2)."""
    return {u.email.split("@")[0]: u for u in session.scalars(select(User))}


@pytest.fixture
def users(app: Flask) -> dict[str, int]:
    """One user per role (+ agent2, developer2), password `password123`; name -> id."""
    with db_session(app) as session:
        return {name: user.id for name, user in make_users(session).items()}
