"""The OpenAPI document: valid, complete, and true to what the endpoints really answer."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flask import Flask
from openapi_spec_validator import validate
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from onboarding import api as api_module
from onboarding import create_app
from onboarding.api import ApiCall, ApiError, endpoint
from onboarding.models import Role, User
from tests.api.conftest import NEW_TICKET, ApiClient
from tests.api.test_flow import full_onboarding
from tests.fixtures_app import app_config, wipe
from tests.mail_ingest.ingest_helpers import mail, new_message_id, sample
from tests.reconciliation_db.test_api import json_sale

Log = list[tuple[str, str, int, Any]]

# Served by mail_ingest and reconciliation through the same registry.
SUBSYSTEM_OPERATIONS = {
    ("get", "/api/v1/mail/triage"),
    ("get", "/api/v1/mail/quarantine"),
    ("post", "/api/v1/mail/triage/{inbound_id}/ticket"),
    ("post", "/api/v1/mail/triage/{inbound_id}/dismiss"),
    ("get", "/api/v1/tickets/{ticket_id}/messages"),
    ("post", "/api/v1/sales"),
    ("patch", "/api/v1/sales/{sale_id}"),
    ("get", "/api/v1/reconciliation/summary"),
    ("get", "/api/v1/reconciliation/items"),
}
SUBSYSTEM_PATHS = {path for _, path in SUBSYSTEM_OPERATIONS}


def document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/api/v1/openapi.json")  # public: no token needed
    assert response.status_code == 200
    return response.get_json()


def test_document_is_valid_openapi(app: Flask) -> None:
    doc = document(app)
    validate(doc)
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"bearerAuth": []}]
    paths = doc["paths"]
    expected = {
        ("get", "/api/v1/tickets"),
        ("post", "/api/v1/tickets"),
        ("get", "/api/v1/tickets/{ticket_id}"),
        ("post", "/api/v1/tickets/{ticket_id}/steps/{key}/complete"),
        ("post", "/api/v1/tickets/{ticket_id}/assign"),
        ("post", "/api/v1/tickets/{ticket_id}/close"),
        ("get", "/api/v1/dev-tasks"),
        ("post", "/api/v1/dev-tasks/{task_id}/take"),
        ("post", "/api/v1/dev-tasks/{task_id}/enable"),
        ("post", "/api/v1/dev-tasks/{task_id}/return"),
        ("get", "/api/v1/billing-requests"),
        ("post", "/api/v1/billing-requests/{request_id}/register"),
    }
    served = {(method, path) for path, item in paths.items() for method in item}
    assert expected <= served
    assert served >= SUBSYSTEM_OPERATIONS
    assert paths["/api/v1/mail/triage"]["get"]["description"] == "Perfis: admin, agent."
    assert set(paths["/api/v1/sales/{sale_id}"]["patch"]["responses"]) == {
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
    }
    items_params = {p["name"] for p in paths["/api/v1/reconciliation/items"]["get"]["parameters"]}
    assert items_params == {"establishment", "as_of", "status", "page", "per_page"}
    create = paths["/api/v1/tickets"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TicketCreate"
    }
    assert set(create["responses"]) == {"201", "400", "401", "403", "409"}
    body_schema = doc["components"]["schemas"]["TicketCreate"]
    assert set(body_schema["required"]) == {"customer_name", "cnpj", "establishment_codes", "contact_email"}
    assert doc["components"]["schemas"]["ErrorOut"]["required"] == ["error", "message"]
    listing = {p["name"] for p in paths["/api/v1/tickets"]["get"]["parameters"]}
    assert listing == {"status", "step", "q", "assignee", "page", "per_page"}
    assert paths["/api/v1/openapi.json"]["get"]["security"] == []


def _operation(doc: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any]]:
    # One segment per parameter first; then any text, for `path` converters (`/sales/NF/22`).
    for parameter in ("[^/]+", ".+"):
        for template, item in doc["paths"].items():
            pattern = re.sub(r"\{[^}]+\}", parameter, template.removeprefix("/api/v1"))
            if re.fullmatch(pattern, path) and method.lower() in item:
                return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    rooted = {**schema, "components": doc["components"]}
    return jsonschema.Draft202012Validator(
        rooted, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _check_answers(doc: dict[str, Any], response_log: Log) -> set[tuple[str, str, str]]:
    """Every logged answer is documented and validates against its documented schema."""
    seen: set[tuple[str, str, str]] = set()
    for method, path, status, body in response_log:
        template, operation = _operation(doc, method, path)
        assert str(status) in operation["responses"], f"{method} {path} answered an undocumented {status}"
        schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
        errors = sorted(_validator(doc, schema).iter_errors(body), key=str)
        assert not errors, f"{method} {path} {status}: {errors[0].message}"
        seen.add((method.lower(), template, str(status)))
    return seen


def _assert_every_success_seen(
    doc: dict[str, Any], seen: set[tuple[str, str, str]], wanted: Callable[[str], bool]
) -> None:
    for template, item in doc["paths"].items():
        for method, operation in item.items():
            success = next(s for s in operation["responses"] if s.startswith("2"))
            if template != "/api/v1/openapi.json" and wanted(template):
                assert (method, template, success) in seen, (
                    f"no real {success} answer for {method} {template}"
                )


def _exercise_errors(api: Callable[[str | None], ApiClient], ticket_id: int) -> None:
    agent = api("agent")
    assert agent.post("/tickets", {**NEW_TICKET, "cnpj": "123"})[0] == 400
    assert agent.get("/tickets", page="x")[0] == 400
    assert api(None).get("/tickets")[0] == 401
    assert api("finance").post("/tickets", NEW_TICKET)[0] == 403
    assert agent.get("/tickets/999999")[0] == 404
    assert agent.post(f"/tickets/{ticket_id}/close")[0] == 409
    assert api("developer").post("/dev-tasks/999999/enable", {"establishment_codes": ["1"]})[0] == 404
    assert api("finance").post("/billing-requests/999999/register", {})[0] == 400


def test_real_responses_match_the_document(
    app: Flask,
    session: Session,
    users: dict[str, User],
    api: Callable[[str | None], ApiClient],
    response_log: Log,
) -> None:
    closed_id = full_onboarding(session, api)
    for role in ("agent", "developer", "finance", "admin"):
        client = api(role)
        for path in ("/tickets", "/dev-tasks", "/billing-requests", f"/tickets/{closed_id}"):
            assert client.get(path)[0] == 200
    _exercise_errors(api, closed_id)

    doc = document(app)
    validate(doc)
    seen = _check_answers(doc, response_log)
    _assert_every_success_seen(doc, seen, lambda template: template not in SUBSYSTEM_PATHS)
    assert {s for *_, s in seen} >= {"200", "201", "400", "401", "403", "404", "409"}

    # The check has teeth: an extra key, a missing key or a wrong type is caught.
    _, operation = _operation(doc, "GET", f"/tickets/{closed_id}")
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    ticket = next(
        b for m, p, s, b in response_log if m == "GET" and p == f"/tickets/{closed_id}" and s == 200
    )
    for mutate in (
        lambda t: t.update(extra=1),
        lambda t: t.pop("assignee"),
        lambda t: t["steps"][0].update(completed_at="ontem"),
        lambda t: t["customer"].update(establishment_codes="1"),
        lambda t: t.update(status="pendente"),
    ):
        broken = copy.deepcopy(ticket)
        mutate(broken)
        assert list(_validator(doc, schema).iter_errors(broken)), broken


def _deliver_mail(app: Flask, session: Session, tmp_path: Path, *raws: bytes) -> None:
    """Import mail the way `demo seed` does (no mailbox needed for a schema check)."""
    from mail_ingest import importer
    from mail_ingest.pipeline import Tally, ingest_batch
    from mail_ingest.process import IngestSettings

    paths = []
    for n, raw in enumerate(raws):
        paths.append(tmp_path / f"{n}.eml")
        paths[-1].write_bytes(raw)
    sources = [importer.Source(path, "eml") for path in paths]
    ingest_batch(session, list(importer.messages(sources)), IngestSettings.from_config(app.config), Tally())
    session.commit()


def test_mail_and_reconciliation_answers_match_the_document(
    app: Flask,
    session: Session,
    users: dict[str, User],
    api: Callable[[str | None], ApiClient],
    response_log: Log,
    tmp_path: Path,
) -> None:
    _deliver_mail(
        app,
        session,
        tmp_path,
        sample("01"),
        mail(subject="dúvida 1", message_id=new_message_id("a")),
        mail(subject="dúvida 2", message_id=new_message_id("b")),
        b"lixo sem cabecalho\r\n",
    )
    agent = api("agent")
    status, triage = agent.get("/mail/triage")
    assert status == 200 and triage["total"] == 2
    assert agent.get("/mail/quarantine")[1]["total"] == 1
    first, second = (item["id"] for item in triage["items"])
    assert agent.post(f"/mail/triage/{first}/dismiss")[0] == 200
    status, opened = agent.post(f"/mail/triage/{second}/ticket", {**NEW_TICKET, "contract_done": True})
    assert status == 201
    for role in ("agent", "finance"):
        status, timeline = api(role).get(f"/tickets/{opened['id']}/messages")
        assert status == 200 and timeline["total"] == 1
    assert api("developer").get("/mail/triage")[0] == 403
    assert agent.get("/tickets/999999/messages")[0] == 404

    developer = api("developer")
    status, imported = developer.post(
        "/sales", [json_sale("1"), json_sale("NF/2"), json_sale("3", amount="x")]
    )
    assert status == 200 and imported["inserted"] == 2 and len(imported["errors"]) == 1
    status, refused = developer.post("/sales", [json_sale("4", amount="x"), {"sale_id": 5}])
    assert status == 400 and refused["error"] == "invalid_sales"
    assert [e["index"] for e in refused["errors"]] == [0, 1]
    status, corrected = agent.call("PATCH", "/sales/NF/2", {"nsu": "77"})
    assert status == 200 and corrected["sale_id"] == "NF/2" and corrected["nsu"] == "77"
    assert agent.call("PATCH", "/sales/nope", {"nsu": "1"})[0] == 404
    for role in ("agent", "developer", "finance", "admin"):
        status, summary = api(role).get("/reconciliation/summary", as_of="2025-03-11")
        assert status == 200 and summary["receipts"] == 2
    status, listed = agent.get("/reconciliation/items", per_page=1)
    assert status == 200 and listed["total"] == 2 and len(listed["items"]) == 1
    assert agent.get("/reconciliation/items", status="wrong")[0] == 400
    assert api(None).get("/reconciliation/items")[0] == 401

    doc = document(app)
    seen = _check_answers(doc, response_log)
    _assert_every_success_seen(doc, seen, lambda template: template in SUBSYSTEM_PATHS)

    # The check has teeth here too: a renamed key or a wrong type is caught.
    for path, body in (("/mail/triage", triage), ("/reconciliation/items", listed)):
        _, operation = _operation(doc, "GET", path)
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        broken = copy.deepcopy(body)
        broken["items"][0]["id"] = str(broken["items"][0]["id"]) if path.startswith("/mail") else 1
        assert list(_validator(doc, schema).iter_errors(broken)), broken
        broken = copy.deepcopy(body)
        broken["items"][0]["sender"] = broken["items"][0].pop("from", "x")
        assert list(_validator(doc, schema).iter_errors(broken)), broken


# --- other packages plug in ------------------------------------------------------------------


class EchoIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    word: str


class EchoOut(BaseModel):
    word: str
    by: str


@pytest.fixture
def plugin_app(sqlite_url: str, tmp_path: Path) -> Iterator[Flask]:
    """An endpoint registered the way mail_ingest or reconciliation would, then a fresh app."""

    @endpoint(
        "POST",
        "/echo/<int:times>",
        summary="Eco",
        roles={Role.FINANCE, Role.ADMIN},
        body=EchoIn,
        response=EchoOut,
    )
    def echo(call: ApiCall, times: int) -> EchoOut:
        if times > 3:
            raise ApiError(409, "too_many", "Vezes demais.")
        if times == 0:  # a bug after a write: 500, and the write is rolled back
            call.db.add(User(email="ghost@test.example", role="agent", password_hash="x"))
            call.db.flush()
            raise RuntimeError("boom")
        return EchoOut(word=call.body.word * times, by=api_module.current_api_user().email)

    flask_app = create_app(app_config(sqlite_url, tmp_path))
    yield flask_app
    del api_module.OPERATIONS[("POST", "/echo/{times}")]
    api_module._openapi_cache.clear()
    wipe(flask_app)


def test_other_packages_add_endpoints(plugin_app: Flask) -> None:
    from onboarding import auth, db

    with plugin_app.app_context():
        session = db.session()
        finance = auth.create_user(session, "fin@test.example", "finance", "password123")
        agent = auth.create_user(session, "ag@test.example", "agent", "password123")
        tokens = {u.role: auth.issue_token(session, u) for u in (finance, agent)}
        session.commit()
    client = plugin_app.test_client()

    def post(role: str | None, times: int, payload: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
        response = client.post(f"/api/v1/echo/{times}", json=payload, headers=headers)
        return response.status_code, response.get_json()

    assert post("finance", 2, {"word": "oi"}) == (200, {"word": "oioi", "by": "fin@test.example"})
    assert post(None, 2, {"word": "oi"})[1]["error"] == "unauthorized"
    assert post("agent", 2, {"word": "oi"}) == (
        403,
        {"error": "forbidden_role", "message": "Seu perfil não permite esta ação."},
    )
    assert post("finance", 2, {"word": 1})[1]["error"] == "invalid_input"
    assert post("finance", 9, {"word": "oi"}) == (409, {"error": "too_many", "message": "Vezes demais."})
    plugin_app.config["PROPAGATE_EXCEPTIONS"] = False
    status, body = post("finance", 0, {"word": "oi"})
    assert status == 500 and body["error"] == "internal_error"
    with plugin_app.app_context():
        assert db.session().scalars(select(User).where(User.email == "ghost@test.example")).first() is None

    doc = document(plugin_app)
    validate(doc)
    operation = doc["paths"]["/api/v1/echo/{times}"]["post"]
    assert operation["parameters"] == [
        {"name": "times", "in": "path", "required": True, "schema": {"type": "integer"}}
    ]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "404", "409"}
    assert "EchoIn" in doc["components"]["schemas"] and "EchoOut" in doc["components"]["schemas"]


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already served"):

        @endpoint("GET", "/tickets", summary="outra")
        def another_list(call: ApiCall) -> None: ...
