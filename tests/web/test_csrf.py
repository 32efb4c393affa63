"""CSRF: every state-changing form route outside /api/ refuses a POST without the session's token."""

from __future__ import annotations

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient

from onboarding import PROJECT_ROOT, services, views
from tests.onboarding.helpers import advance_to, make_users, open_ticket
from tests.web.conftest import db_session, db_snapshot
from tests.web.helpers import login_as, post_form, text

KNOWN_FORMS = {
    "/login",
    "/logout",
    "/tickets/new",
    "/tickets/<int:ticket_id>/steps/<key>/complete",
    "/tickets/<int:ticket_id>/assign",
    "/tickets/<int:ticket_id>/close",
    "/dev-tasks/<int:task_id>/take",
    "/dev-tasks/<int:task_id>/enable",
    "/dev-tasks/<int:task_id>/return",
    "/billing/<int:request_id>/register",
    "/profile/tokens",
    "/profile/tokens/<int:token_id>/revoke",
}


def post_routes(app: Flask) -> list[tuple[str, str]]:
    """(rule, a concrete URL) for every POST route of the app outside /api/, whoever registered it."""
    routes = []
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or set()) or rule.rule.startswith("/api/"):
            continue
        url = adapter.build(rule.endpoint, dict.fromkeys(rule.arguments, 1))
        routes.append((rule.rule, url))
    return routes


def test_enumeration_covers_the_desk_forms(app: Flask) -> None:
    assert {rule for rule, _ in post_routes(app)} >= KNOWN_FORMS


def test_tokenless_posts_are_refused_signed_out(app: Flask, client: FlaskClient) -> None:
    for rule, url in post_routes(app):
        response = client.post(url, data={"notes": "x", "invoice_ref": "NF-1", "label": "x"})
        assert response.status_code == 400, rule
        assert "proteção CSRF" in text(response), rule


def test_tokenless_posts_are_refused_signed_in_and_change_nothing(app: Flask, client: FlaskClient) -> None:
    with db_session(app) as session:
        users = make_users(session)
        ticket = open_ticket(session, users["admin"])
        advance_to(session, users, ticket, 5)  # dev task, billing request: every id 1 exists
        assert ticket.billing_request is not None
        services.register_billing(session, users["finance"], ticket.billing_request.id, "NF-1")
        session.commit()
    login_as(client, "admin")
    before = db_snapshot(app)
    for rule, url in post_routes(app):
        response = client.post(
            url,
            data={"notes": "x", "invoice_ref": "NF-1", "label": "x", "user_email": "agent@test.example"},
            headers={"X-CSRFToken": "forged"},
        )
        assert response.status_code == 400, rule
    assert db_snapshot(app) == before
    # The same session with its real token is accepted (the refusals above were about the token).
    assert post_form(client, "/tickets/1/close").status_code == 303


def test_api_blueprint_is_exempt_by_name_and_path() -> None:
    """Bearer-token API calls carry no CSRF token: blueprint "api" and /api/ paths are not checked."""
    bare = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"))
    bare.config.update(SECRET_KEY="test", TESTING=True)
    by_name = Blueprint("api", __name__, url_prefix="/v1-probe")
    by_name.add_url_rule("/ping", "ping", lambda: "ok", methods=["POST"])
    by_path = Blueprint("other", __name__, url_prefix="/api/v9")
    by_path.add_url_rule("/ping", "ping", lambda: "ok", methods=["POST"])
    plain = Blueprint("plain", __name__)
    plain.add_url_rule("/ping", "ping", lambda: "ok", methods=["POST"])
    webhook = Blueprint("webhook", __name__, url_prefix="/hook")  # exempted the Flask-WTF way
    webhook.add_url_rule("/ping", "ping", lambda: "ok", methods=["POST"])
    views.csrf.exempt(webhook)
    for blueprint in (by_name, by_path, plain, webhook):
        bare.register_blueprint(blueprint)
    views.init_app(bare)
    client = bare.test_client()
    assert client.post("/v1-probe/ping").status_code == 200
    assert client.post("/api/v9/ping").status_code == 200
    assert client.post("/hook/ping").status_code == 200
    refused = client.post("/ping")
    assert refused.status_code == 400 and "proteção CSRF" in text(refused)


def test_real_api_routes_do_not_ask_for_csrf(app: Flask, client: FlaskClient) -> None:
    api_rules = [
        r for r in app.url_map.iter_rules() if r.rule.startswith("/api/") and "POST" in (r.methods or ())
    ]
    if not api_rules:
        pytest.skip("no /api/ POST route in this build yet (the exemption itself is tested above)")
    adapter = app.url_map.bind("localhost")
    for rule in api_rules:
        url = adapter.build(rule.endpoint, dict.fromkeys(rule.arguments, 1))
        assert "proteção CSRF" not in text(client.post(url, json={})), rule.rule
