"""Web test helpers: sign in through the real form, read the CSRF token a page carries, post forms."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

PASSWORD = "password123"
META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_token(client: FlaskClient, page: str = "/login") -> str:
    """The token of the client's session, as the page's <meta name="csrf-token"> carries it."""
    response = client.get(page)
    match = META_TOKEN.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {page} ({response.status_code})"
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    token = csrf_token(client, "/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def login_as(client: FlaskClient, role: str) -> None:
    response = login(client, f"{role}@test.example")
    assert response.status_code == 303, response.get_data(as_text=True)


def post_form(client: FlaskClient, url: str, data: dict[str, Any] | None = None) -> TestResponse:
    """POST like the browser does: with the session's CSRF token."""
    fields = dict(data or {})
    fields["csrf_token"] = csrf_token(client, "/profile")
    return client.post(url, data=fields)


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


class CsrfClient(FlaskClient):
    """Posts forms as the browser does: with the session's CSRF token (read from a page)."""

    def post(self, *args: Any, **kwargs: Any) -> TestResponse:
        data = kwargs.get("data")
        if isinstance(data, dict) and "csrf_token" not in data:
            kwargs["data"] = {**data, "csrf_token": csrf_token(self, "/profile")}
        return super().post(*args, **kwargs)
