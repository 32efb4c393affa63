"""API fixtures: one user and one bearer token per role, and a small JSON client."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from onboarding import auth
from onboarding.models import Role, User

ROLES = ("agent", "developer", "finance", "admin")


@cache
def _password_hash() -> str:
    # The API never sees passwords; hashing once keeps per-test user creation cheap.
    return generate_password_hash("password123")


@pytest.fixture
def users(session: Session) -> dict[str, User]:
    people = {role.value: (f"{role.value}@test.example", role) for role in Role}
    people["agent2"] = ("agent2@test.example", Role.AGENT)
    people["developer2"] = ("developer2@test.example", Role.DEVELOPER)
    made = {}
    for key, (email, role) in people.items():
        made[key] = User(email=email, role=role, name=key, password_hash=_password_hash())
        session.add(made[key])
    session.commit()
    return made


@pytest.fixture
def tokens(session: Session, users: dict[str, User]) -> dict[str, str]:
    issued = {key: auth.issue_token(session, user, label="tests") for key, user in users.items()}
    session.commit()
    return issued


class ApiClient:
    """JSON in and out with a bearer token; every answer is also recorded for schema checks."""

    def __init__(self, client: Any, token: str | None, log: list[tuple[str, str, int, Any]]) -> None:
        self.client = client
        self.token = token
        self.log = log

    def call(self, method: str, path: str, json: Any = None, **kwargs: Any) -> tuple[int, Any]:
        headers = kwargs.pop("headers", {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        if json is not None:
            kwargs["json"] = json
        # A fresh contextvars context: the request gets its own app context and database session,
        # as in production, instead of reusing the test's (pushed by the `session` fixture).
        response = contextvars.Context().run(
            self.client.open, "/api/v1" + path, method=method, headers=headers, **kwargs
        )
        body = response.get_json(silent=True)
        self.log.append((method, path.split("?")[0], response.status_code, body))
        return response.status_code, body

    def get(self, path: str, **params: Any) -> tuple[int, Any]:
        return self.call("GET", path, query_string=params)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> tuple[int, Any]:
        return self.call("POST", path, json, **kwargs)


@pytest.fixture
def response_log() -> list[tuple[str, str, int, Any]]:
    return []


@pytest.fixture
def api(
    app: Flask, tokens: dict[str, str], response_log: list[tuple[str, str, int, Any]]
) -> Callable[[str | None], ApiClient]:
    """`api("agent")` is a client authenticated as that role's user; `api(None)` has no token."""

    def make(role: str | None) -> ApiClient:
        return ApiClient(app.test_client(), tokens[role] if role else None, response_log)

    return make


NEW_TICKET: dict[str, Any] = {
    "customer_name": "Drogaria Central Ltda",
    "cnpj": "52.601.815/0001-20",
    "establishment_codes": ["1234567890"],
    "contact_email": "contato@drogariacentral.example",
}
