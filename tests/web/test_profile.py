"""API tokens on the profile page: shown once, stored hashed, revoked; nobody touches another's."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from onboarding import auth
from onboarding.models import ApiToken
from tests.web.conftest import db_session, db_snapshot
from tests.web.helpers import login_as, post_form, text

TOKEN_INPUT = re.compile(r'id="new-token" class="mono" value="([^"]+)"')


def test_create_show_once_and_revoke(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    login_as(client, "agent")
    created = post_form(client, "/profile/tokens", {"label": "planilha"})
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    match = TOKEN_INPUT.search(text(created))
    assert match
    token = match.group(1)
    assert "Copie-o agora" in text(created)

    with db_session(app) as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == auth.hash_token(token) and token not in row.token_hash
        user = auth.user_for_token(session, token)
        assert user is not None and user.id == users["agent"]
        token_id = row.id

    page = text(client.get("/profile"))
    assert token not in page and "planilha" in page and "Ativo" in page  # never shown again

    response = post_form(client, f"/profile/tokens/{token_id}/revoke")
    assert response.status_code == 303
    assert "Token “planilha” revogado." in text(client.get("/profile"))
    with db_session(app) as session:
        assert auth.user_for_token(session, token) is None


def test_token_needs_a_label(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    login_as(client, "agent")
    before = db_snapshot(app)
    response = post_form(client, "/profile/tokens", {"label": "  "})
    assert response.status_code == 400 and "Dê um nome ao token" in text(response)
    assert db_snapshot(app) == before


def test_cannot_revoke_someone_elses_token(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    with db_session(app) as session:
        owner = session.get(auth.User, users["developer"])
        assert owner is not None
        auth.issue_token(session, owner, label="dev")
        session.commit()
        token_id = session.scalars(select(ApiToken.id)).one()
    login_as(client, "agent")
    before = db_snapshot(app)
    response = post_form(client, f"/profile/tokens/{token_id}/revoke")
    assert response.status_code == 404 and "Token não encontrado." in text(response)
    assert db_snapshot(app) == before
