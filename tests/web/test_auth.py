"""Sign-in, sign-out, lockout and sessions, through the real forms (both databases)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from onboarding.models import Ticket, User
from tests.web.conftest import db_session
from tests.web.helpers import csrf_token, login, post_form, text


def test_pages_need_sign_in(client: FlaskClient) -> None:
    response = client.get("/tickets")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_login_lands_on_own_queue_and_logout_ends_session(client: FlaskClient, users: dict[str, int]) -> None:
    response = login(client, "agent@test.example")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200 and "Fila de chamados" in text(home)

    assert client.get("/logout").status_code == 405  # only a POST (with CSRF) signs out
    response = post_form(client, "/logout")
    assert response.status_code == 303, text(response)
    assert response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_each_role_gets_its_queue_at_root(client: FlaskClient, users: dict[str, int]) -> None:
    expected = {
        "developer": "Integrações para o desenvolvimento",
        "finance": "Cobranças de integração",
        "admin": "Fila de chamados",
    }
    for role, title in expected.items():
        login(client, f"{role}@test.example")
        assert title in text(client.get("/"))
        post_form(client, "/logout")


def test_wrong_password_is_refused_in_portuguese(client: FlaskClient, users: dict[str, int]) -> None:
    response = login(client, "agent@test.example", "wrong-password")
    assert response.status_code == 401
    assert "E-mail ou senha incorretos." in text(response)
    assert client.get("/").status_code == 302


def test_lockout_after_repeated_failures(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    for _ in range(5):
        assert login(client, "agent@test.example", "wrong-password").status_code == 401
    response = login(client, "agent@test.example")  # the right password, but locked now
    assert response.status_code == 401
    assert "Conta bloqueada temporariamente" in text(response)
    with db_session(app) as session:
        user = session.get(User, users["agent"])
        assert user is not None and user.locked_until is not None
    assert client.get("/").status_code == 302


def test_next_parameter_never_leaves_the_site(client: FlaskClient, users: dict[str, int]) -> None:
    token = csrf_token(client)
    for target, expected in (("/tickets?status=all", "/tickets?status=all"), ("//evil.example/x", "/")):
        response = client.post(
            f"/login?next={target}",
            data={"email": "agent@test.example", "password": "password123", "csrf_token": token},
        )
        assert response.headers["Location"] == expected
        token = csrf_token(client, "/profile")
        post_form(client, "/logout")
        token = csrf_token(client)


def test_login_without_csrf_token_is_refused(client: FlaskClient, users: dict[str, int]) -> None:
    response = client.post("/login", data={"email": "agent@test.example", "password": "password123"})
    assert response.status_code == 400
    assert "CSRF" in text(response)
    assert client.get("/").status_code == 302


def test_deactivated_user_loses_the_session(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    login(client, "agent@test.example")
    assert client.get("/").status_code == 200
    token = csrf_token(client, "/profile")
    with db_session(app) as session:
        session.get(User, users["agent"]).active = False  # type: ignore[union-attr]
        session.commit()
    assert client.get("/").status_code == 302
    form = {"customer_name": "Farmácia X", "cnpj": "11222333000181", "csrf_token": token}
    posted = client.post("/tickets/new", data=form)
    assert posted.status_code == 302 and posted.headers["Location"].startswith("/login")
    with db_session(app) as session:
        assert session.scalars(select(Ticket)).first() is None


def test_a_changed_role_counts_from_the_next_request(
    app: Flask, client: FlaskClient, users: dict[str, int]
) -> None:
    login(client, "agent@test.example")
    assert "Fila de chamados" in text(client.get("/"))
    assert client.get("/tickets/new").status_code == 200
    with db_session(app) as session:
        session.get(User, users["agent"]).role = "developer"  # type: ignore[union-attr]
        session.commit()
    assert "Fila de chamados" not in text(client.get("/"))  # home is now the developers' queue
    refused = client.get("/tickets/new")
    assert refused.status_code == 403 and "seu perfil é Desenvolvimento" in text(refused)
    posted = post_form(client, "/tickets/new", {"customer_name": "Farmácia X", "cnpj": "11222333000181"})
    assert posted.status_code == 403
    with db_session(app) as session:
        assert session.scalars(select(Ticket)).first() is None
