"""Every error shape: 400, 403, 404, 405, 409, each `{error, message}` with nothing changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from onboarding.models import Ticket, User
from tests.api.conftest import NEW_TICKET, ApiClient
from tests.onboarding.helpers import advance_to, open_ticket, snapshot


@pytest.fixture
def ticket(session: Session, users: dict[str, User]) -> Ticket:
    return open_ticket(session, users["agent"])


def refused(
    session: Session, client: ApiClient, method: str, path: str, payload: Any = None, **kw: Any
) -> tuple[int, str, str]:
    before = snapshot(session)
    status, body = client.call(method, path, payload, **kw)
    assert set(body) == {"error", "message"}, body
    assert isinstance(body["message"], str) and body["message"]
    assert snapshot(session) == before
    return status, body["error"], body["message"]


@pytest.mark.parametrize(
    ("payload", "code", "words"),
    [
        ({**NEW_TICKET, "cnpj": "52.601.815/0001-21"}, "invalid_cnpj", "CNPJ inválido"),
        ({**NEW_TICKET, "cnpj": 52601815000120}, "invalid_input", "cnpj: deve ser um texto"),
        ({**NEW_TICKET, "establishment_codes": "1234567890"}, "invalid_input", "deve ser uma lista"),
        ({**NEW_TICKET, "establishment_codes": [1234]}, "invalid_input", "establishment_codes.0"),
        ({k: v for k, v in NEW_TICKET.items() if k != "customer_name"}, "invalid_input", "obrigatório"),
        ({**NEW_TICKET, "customer_name": ""}, "invalid_input", "não pode ficar vazio"),
        ({**NEW_TICKET, "customer_name": "   "}, "missing_customer_name", "nome do cliente"),
        ({**NEW_TICKET, "customer_name": "x" * 201}, "invalid_input", "no máximo 200 caracteres"),
        ({**NEW_TICKET, "contact_email": "sem-arroba"}, "invalid_input", "contact_email: formato inválido"),
        ({**NEW_TICKET, "surprise": 1}, "invalid_input", "surprise: campo não permitido"),
        ([NEW_TICKET], "invalid_input", "objeto JSON"),
    ],
)
def test_bad_ticket_bodies_are_400(
    session: Session,
    api: Callable[[str | None], ApiClient],
    users: dict[str, User],
    payload: Any,
    code: str,
    words: str,
) -> None:
    status, error, message = refused(session, api("agent"), "POST", "/tickets", payload)
    assert (status, error) == (400, code)
    assert words in message


def test_malformed_json_is_400(
    session: Session, api: Callable[[str | None], ApiClient], ticket: Ticket
) -> None:
    for raw in (b'{"notes": ', b"not json", b"\xff\xfe"):
        status, error, _ = refused(
            session,
            api("agent"),
            "POST",
            f"/tickets/{ticket.id}/steps/contract/complete",
            data=raw,
            content_type="application/json",
        )
        assert (status, error) == (400, "invalid_json")


@pytest.mark.parametrize(
    "params",
    [
        {"page": "abc"},
        {"page": "0"},
        {"per_page": "0"},
        {"per_page": "101"},
        {"status": "pending"},
        {"step": "x"},
    ],
)
def test_bad_query_parameters_are_400(
    session: Session, api: Callable[[str | None], ApiClient], users: dict[str, User], params: dict[str, str]
) -> None:
    status, error, message = refused(session, api("agent"), "GET", "/tickets", query_string=params)
    assert (status, error) == (400, "invalid_input")
    assert message.startswith("Parâmetros inválidos: " + next(iter(params)))


def test_bad_bodies_on_the_other_endpoints(
    session: Session, api: Callable[[str | None], ApiClient], users: dict[str, User], ticket: Ticket
) -> None:
    advance_to(session, users, ticket, 5)
    assert ticket.dev_task is not None and ticket.billing_request is not None
    agent, finance, dev = api("agent"), api("finance"), api("developer")
    cases = [
        (agent, f"/tickets/{ticket.id}/assign", {}, "invalid_input"),
        (agent, f"/tickets/{ticket.id}/assign", {"user_email": "nobody@test.example"}, "unknown_user"),
        (agent, f"/tickets/{ticket.id}/assign", {"user_email": "finance@test.example"}, "assignee_not_agent"),
        (
            finance,
            f"/billing-requests/{ticket.billing_request.id}/register",
            {"invoice_ref": ""},
            "invalid_input",
        ),
        (
            finance,
            f"/billing-requests/{ticket.billing_request.id}/register",
            {"invoice_ref": " "},
            "missing_invoice_ref",
        ),
        (
            dev,
            f"/dev-tasks/{ticket.dev_task.id}/enable",
            {"establishment_codes": [" "]},
            "missing_establishment_code",
        ),
        (dev, f"/dev-tasks/{ticket.dev_task.id}/enable", {"establishment_codes": None}, "invalid_input"),
    ]
    for client, path, payload, code in cases:
        status, error, _ = refused(session, client, "POST", path, payload)
        assert (status, error) == (400, code), path


def test_not_found(session: Session, api: Callable[[str | None], ApiClient], ticket: Ticket) -> None:
    agent, dev, finance = api("agent"), api("developer"), api("finance")
    cases = [
        (agent, "GET", "/tickets/999999", None, "ticket_not_found"),
        (agent, "POST", "/tickets/999999/close", None, "ticket_not_found"),
        (agent, "POST", "/tickets/999999/assign", {"user_email": "agent@test.example"}, "ticket_not_found"),
        (agent, "POST", f"/tickets/{ticket.id}/steps/nope/complete", {}, "unknown_step"),
        (dev, "POST", "/dev-tasks/999999/take", None, "dev_task_not_found"),
        (
            finance,
            "POST",
            "/billing-requests/999999/register",
            {"invoice_ref": "x"},
            "billing_request_not_found",
        ),
        (agent, "GET", "/no-such-thing", None, "not_found"),
        (agent, "GET", "/tickets/abc", None, "not_found"),
    ]
    for client, method, path, payload, code in cases:
        status, error, _ = refused(session, client, method, path, payload)
        assert (status, error) == (404, code), path


def test_wrong_method_is_405_json(
    session: Session, api: Callable[[str | None], ApiClient], ticket: Ticket
) -> None:
    status, error, _ = refused(session, api("agent"), "DELETE", f"/tickets/{ticket.id}")
    assert (status, error) == (405, "method_not_allowed")


def test_workflow_rules_are_409(
    session: Session, api: Callable[[str | None], ApiClient], users: dict[str, User], ticket: Ticket
) -> None:
    agent, dev = api("agent"), api("developer")
    tid = ticket.id
    status, error, message = refused(session, agent, "POST", f"/tickets/{tid}/steps/orientation/complete", {})
    assert (status, error) == (409, "step_out_of_order") and "Contratação" in message
    assert refused(session, agent, "POST", f"/tickets/{tid}/close")[:2] == (409, "steps_pending")

    advance_to(session, users, ticket, 2)
    assert ticket.dev_task is not None
    assert refused(session, agent, "POST", f"/tickets/{tid}/steps/contract/complete", {})[:2] == (
        409,
        "step_already_done",
    )
    assert refused(session, agent, "POST", f"/tickets/{tid}/steps/validation/complete", {})[:2] == (
        409,
        "dev_task_not_returned",
    )
    assert refused(session, dev, "POST", f"/dev-tasks/{ticket.dev_task.id}/return")[:2] == (
        409,
        "dev_task_not_enabled",
    )
    assert dev.post(f"/dev-tasks/{ticket.dev_task.id}/take")[0] == 200
    assert refused(session, api("developer2"), "POST", f"/dev-tasks/{ticket.dev_task.id}/take")[:2] == (
        409,
        "dev_task_already_taken",
    )
    assert refused(
        session,
        api("developer2"),
        "POST",
        f"/dev-tasks/{ticket.dev_task.id}/enable",
        {"establishment_codes": ["1"]},
    )[:2] == (409, "dev_task_taken_by_other")


def test_closed_ticket_refuses_changes(
    session: Session, api: Callable[[str | None], ApiClient], users: dict[str, User], ticket: Ticket
) -> None:
    advance_to(session, users, ticket, 5)
    assert ticket.billing_request is not None
    agent = api("agent")
    assert refused(session, agent, "POST", f"/tickets/{ticket.id}/close")[:2] == (
        409,
        "billing_not_registered",
    )
    finance = api("finance")
    assert (
        finance.post(f"/billing-requests/{ticket.billing_request.id}/register", {"invoice_ref": "NF"})[0]
        == 200
    )
    register_again = f"/billing-requests/{ticket.billing_request.id}/register"
    assert refused(session, finance, "POST", register_again, {"invoice_ref": "NF2"})[:2] == (
        409,
        "billing_already_registered",
    )
    assert agent.post(f"/tickets/{ticket.id}/close")[0] == 200
    for path, payload in [
        (f"/tickets/{ticket.id}/close", None),
        (f"/tickets/{ticket.id}/assign", {"user_email": "agent2@test.example"}),
        (f"/tickets/{ticket.id}/steps/billing/complete", {}),
    ]:
        assert refused(session, agent, "POST", path, payload)[:2] == (409, "ticket_closed"), path
