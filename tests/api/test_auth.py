"""Bearer tokens: 401 shapes, revocation, last-use bookkeeping, no cookies, no CSRF (both databases)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from onboarding import auth
from onboarding.models import ApiToken, User
from tests.api.conftest import NEW_TICKET, ApiClient
from tests.onboarding.helpers import snapshot

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token exd_abc", "Bearer exd_not-a-real-token"],
)
def test_missing_or_bad_token_is_401(
    session: Session, api: Callable[[str | None], ApiClient], users: dict[str, User], header: str | None
) -> None:
    client = api(None)
    before = snapshot(session)
    headers = {} if header is None else {"Authorization": header}
    for method, path in [("GET", "/tickets"), ("POST", "/tickets"), ("POST", "/tickets/1/close")]:
        status, body = client.call(method, path, NEW_TICKET if method == "POST" else None, headers=headers)
        assert status == 401, (header, path)
        assert body["error"] == "unauthorized" and set(body) == {"error", "message"}
        assert body["message"]
    assert snapshot(session) == before


def test_revoked_token_and_inactive_user_are_401(
    session: Session, api: Callable[[str | None], ApiClient], users: dict[str, User], tokens: dict[str, str]
) -> None:
    agent = api("agent")
    assert agent.get("/tickets")[0] == 200
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == auth.hash_token(tokens["agent"]))
    ).one()
    auth.revoke_token(session, users["agent"], row.id)
    session.commit()
    status, body = agent.get("/tickets")
    assert status == 401 and body["error"] == "unauthorized" and "revogado" in body["message"]

    finance = api("finance")
    assert finance.get("/tickets")[0] == 200
    users["finance"].active = False
    session.commit()
    assert finance.get("/tickets")[0] == 401


def test_401_names_the_scheme(api: Callable[[str | None], ApiClient], users: dict[str, User]) -> None:
    response = api(None).client.get("/api/v1/tickets")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_session_cookie_is_not_an_api_credential(app: Flask, users: dict[str, User]) -> None:
    client = app.test_client()
    with client.session_transaction() as web_session:  # what a logged-in browser would carry
        web_session["_user_id"] = str(users["admin"].id)
        web_session["_fresh"] = True
    response = client.get("/api/v1/tickets")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"


@pytest.fixture
def writes(app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            seen.append(statement)

    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_last_used_at_is_touched_at_most_once_a_minute(
    session: Session,
    api: Callable[[str | None], ApiClient],
    tokens: dict[str, str],
    writes: list[str],
) -> None:
    def last_used() -> datetime | None:
        session.expire_all()
        return session.scalars(
            select(ApiToken.last_used_at).where(ApiToken.token_hash == auth.hash_token(tokens["developer"]))
        ).one()

    client = api("developer")
    assert last_used() is None
    with time_machine.travel(T0, tick=False):
        assert client.get("/tickets")[0] == 200
    assert last_used() == T0
    assert len(writes) == 1 and "api_token" in writes[0]

    writes.clear()
    for seconds in (1, 30, 59):
        with time_machine.travel(T0 + timedelta(seconds=seconds), tick=False):
            assert client.get("/tickets")[0] == 200
            assert client.get("/dev-tasks")[0] == 200
    assert writes == []  # reads within the minute write nothing
    assert last_used() == T0

    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        assert client.get("/tickets")[0] == 200
    assert last_used() == T0 + timedelta(seconds=61)
    assert len(writes) == 1


def test_refused_call_does_not_touch_the_token(
    session: Session, api: Callable[[str | None], ApiClient], tokens: dict[str, str]
) -> None:
    before = snapshot(session)
    status, _ = api("finance").post("/tickets", NEW_TICKET)
    assert status == 403
    assert snapshot(session) == before  # last_used_at included: one transaction, rolled back


def test_api_is_exempt_from_csrf(app: Flask, api: Callable[[str | None], ApiClient]) -> None:
    if "csrf" not in app.extensions:  # the web pages may or may not have turned it on already
        CSRFProtect(app)
    app.config["WTF_CSRF_ENABLED"] = True
    app.add_url_rule("/csrf-probe", "csrf_probe", lambda: "ok", methods=["POST"])
    probe = app.test_client().post("/csrf-probe")
    assert probe.status_code == 400  # CSRF really is on for the web
    status, body = api("agent").post("/tickets", NEW_TICKET)
    assert status == 201, body
