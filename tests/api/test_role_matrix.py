"""Every state-changing endpoint called by every role: only SPEC's roles (and admin) succeed.

The others get 403 `forbidden_role` and the database is unchanged, even with the service layer's
own role check switched off (the API's fence holds on its own). Both databases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

from onboarding import services
from onboarding.models import Ticket, User
from tests.api.conftest import NEW_TICKET, ROLES, ApiClient
from tests.onboarding.helpers import advance_to, open_ticket, snapshot

Call = Callable[[ApiClient, Ticket], tuple[int, Any]]


@dataclass(frozen=True)
class Case:
    allowed: frozenset[str]  # from SPEC section 5, written out here rather than read from the code
    steps_done: int
    call: Call
    success: int = 200
    taken: bool = False
    enabled: bool = False
    billed: bool = False


def _dev(ticket: Ticket) -> int:
    assert ticket.dev_task is not None
    return ticket.dev_task.id


def _bill(ticket: Ticket) -> int:
    assert ticket.billing_request is not None
    return ticket.billing_request.id


AGENTS = frozenset({"agent", "admin"})
CASES: dict[str, Case] = {
    "open_ticket": Case(AGENTS, 0, lambda c, t: c.post("/tickets", NEW_TICKET), success=201),
    "complete_step": Case(
        AGENTS, 0, lambda c, t: c.post(f"/tickets/{t.id}/steps/contract/complete", {"notes": "ok"})
    ),
    "assign": Case(
        AGENTS, 0, lambda c, t: c.post(f"/tickets/{t.id}/assign", {"user_email": "agent2@test.example"})
    ),
    "take_dev_task": Case(
        frozenset({"developer", "admin"}), 2, lambda c, t: c.post(f"/dev-tasks/{_dev(t)}/take")
    ),
    "enable_dev_task": Case(
        frozenset({"developer", "admin"}),
        2,
        lambda c, t: c.post(f"/dev-tasks/{_dev(t)}/enable", {"establishment_codes": ["1234567890"]}),
        taken=True,
    ),
    "return_dev_task": Case(
        frozenset({"developer", "admin"}),
        2,
        lambda c, t: c.post(f"/dev-tasks/{_dev(t)}/return"),
        taken=True,
        enabled=True,
    ),
    "register_billing": Case(
        frozenset({"finance", "admin"}),
        5,
        lambda c, t: c.post(f"/billing-requests/{_bill(t)}/register", {"invoice_ref": "NF-1"}),
    ),
    "close_ticket": Case(AGENTS, 5, lambda c, t: c.post(f"/tickets/{t.id}/close"), billed=True),
}


def _prepare(session: Session, users: dict[str, User], case: Case, n: int) -> Ticket:
    ticket = open_ticket(session, users["agent"], customer_name=f"Drogaria {n}")
    advance_to(session, users, ticket, case.steps_done)
    dev = users["developer"]
    if case.taken:
        services.take_dev_task(session, dev, _dev(ticket))
    if case.enabled:
        services.enable_dev_task(session, dev, _dev(ticket), ["1234567890"])
    if case.billed:
        services.register_billing(session, users["finance"], _bill(ticket), "NF-0")
    session.commit()
    return ticket


@pytest.mark.parametrize("name", sorted(CASES))
def test_role_matrix(
    name: str,
    session: Session,
    users: dict[str, User],
    api: Callable[[str | None], ApiClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = CASES[name]
    allowed = sorted(case.allowed)
    tickets = {role: _prepare(session, users, case, n) for n, role in enumerate(allowed)}
    target = tickets[allowed[0]]

    denied = [role for role in ROLES if role not in case.allowed]
    assert denied, "every state-changing endpoint is refused to someone"
    for service_fence in (True, False):
        if not service_fence:
            monkeypatch.setattr(services, "require_role", lambda *args, **kwargs: None)
        for role in denied:
            before = snapshot(session)
            status, body = case.call(api(role), target)
            assert (status, body["error"]) == (403, "forbidden_role"), (role, body)
            assert body["message"]
            assert snapshot(session) == before, f"{role} changed something via {name}"
    monkeypatch.undo()

    for role in allowed:
        before = snapshot(session)
        status, body = case.call(api(role), tickets[role])
        assert status == case.success, (role, body)
        assert snapshot(session) != before
