"""Every workflow rule, refused once each with its code and an unchanged database (both databases)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from onboarding import services
from onboarding.errors import DomainError
from onboarding.models import AuditEvent, StepKey, Ticket, TicketStatus, User
from tests.onboarding.helpers import advance_to, make_users, open_ticket, snapshot


@pytest.fixture
def users(session: Session) -> dict[str, User]:
    return make_users(session)


def assert_refused(db: Session, action: Callable[[], object], code: str, status: int) -> None:
    before = snapshot(db)
    with pytest.raises(DomainError) as caught:
        action()
    db.rollback()
    assert caught.value.code == code
    assert caught.value.http_status == status
    assert caught.value.message  # a pt-BR reason for people
    assert snapshot(db) == before


def test_happy_path_to_closed_ticket_with_audit(session: Session, users: dict[str, User]) -> None:
    agent, dev, finance = users["agent"], users["developer"], users["finance"]
    ticket = open_ticket(session, agent)
    assert [s.key for s in ticket.steps] == list(StepKey)
    assert ticket.number == f"EX-{ticket.id:06d}"

    services.complete_step(session, agent, ticket.id, "contract", notes="contrato confirmado")
    services.complete_step(session, agent, ticket.id, "dev_handoff")
    session.commit()
    task = ticket.dev_task
    assert task is not None and task.establishment_codes == ["1234567890"]
    services.take_dev_task(session, dev, task.id)
    services.enable_dev_task(session, dev, task.id, ["1234567890", "1234567891"])
    services.return_dev_task(session, dev, task.id)
    services.complete_step(session, agent, ticket.id, "validation")
    services.complete_step(session, agent, ticket.id, "orientation")
    services.complete_step(session, agent, ticket.id, "billing")
    session.commit()
    request = ticket.billing_request
    assert request is not None and request.status == "requested"
    services.register_billing(session, finance, request.id, "NF-123")
    services.close_ticket(session, agent, ticket.id)
    session.commit()

    session.expire_all()
    closed = session.get(Ticket, ticket.id)
    assert closed is not None and closed.status == TicketStatus.CLOSED and closed.current_step is None
    assert all(s.status == "done" and s.completed_at for s in closed.steps)
    assert closed.step("contract").notes == "contrato confirmado"
    assert closed.step("contract").completed_by_id == agent.id
    assert closed.customer.establishment_codes == ["1234567890", "1234567891"]

    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.ticket_id == ticket.id).order_by(AuditEvent.id)
    ).all()
    assert actions == [
        "ticket.opened",
        "step.completed",
        "step.completed",
        "dev_task.created",
        "dev_task.taken",
        "dev_task.enabled",
        "dev_task.returned",
        "step.completed",
        "step.completed",
        "step.completed",
        "billing.requested",
        "billing.registered",
        "ticket.closed",
    ]
    closing = session.scalars(select(AuditEvent).where(AuditEvent.action == "ticket.closed")).one()
    assert closing.actor_id == agent.id
    assert closing.before is not None and closing.before["status"] == "open"
    assert closing.after is not None and closing.after["status"] == "closed"


def test_step_out_of_order_refused(session: Session, users: dict[str, User]) -> None:
    ticket = open_ticket(session, users["agent"])
    assert_refused(
        session,
        lambda: services.complete_step(session, users["agent"], ticket.id, "dev_handoff"),
        "step_out_of_order",
        409,
    )


def test_step_already_done_refused(session: Session, users: dict[str, User]) -> None:
    ticket = open_ticket(session, users["agent"])
    advance_to(session, users, ticket, 1)
    assert_refused(
        session,
        lambda: services.complete_step(session, users["agent"], ticket.id, "contract"),
        "step_already_done",
        409,
    )


@pytest.mark.parametrize("role", ["developer", "finance"])
def test_step_completion_needs_agent_role(session: Session, users: dict[str, User], role: str) -> None:
    ticket = open_ticket(session, users["agent"])
    assert_refused(
        session,
        lambda: services.complete_step(session, users[role], ticket.id, "contract"),
        "forbidden_role",
        403,
    )


def test_validation_waits_for_returned_dev_task(session: Session, users: dict[str, User]) -> None:
    ticket = open_ticket(session, users["agent"])
    advance_to(session, users, ticket, 2)
    task = ticket.dev_task
    assert task is not None
    services.take_dev_task(session, users["developer"], task.id)
    services.enable_dev_task(session, users["developer"], task.id, ["1234567890"])
    session.commit()
    assert_refused(
        session,
        lambda: services.complete_step(session, users["agent"], ticket.id, "validation"),
        "dev_task_not_returned",
        409,
    )


def test_dev_task_rules(session: Session, users: dict[str, User]) -> None:
    ticket = open_ticket(session, users["agent"])
    advance_to(session, users, ticket, 2)
    task = ticket.dev_task
    assert task is not None
    dev, other = users["developer"], users["developer2"]
    assert_refused(
        session, lambda: services.take_dev_task(session, users["agent"], task.id), "forbidden_role", 403
    )
    assert_refused(
        session, lambda: services.enable_dev_task(session, dev, task.id, ["1"]), "dev_task_not_taken", 409
    )
    assert_refused(
        session, lambda: services.return_dev_task(session, dev, task.id), "dev_task_not_enabled", 409
    )
    services.take_dev_task(session, dev, task.id)
    session.commit()
    assert_refused(
        session, lambda: services.take_dev_task(session, other, task.id), "dev_task_already_taken", 409
    )
    assert_refused(
        session,
        lambda: services.enable_dev_task(session, dev, task.id, []),
        "missing_establishment_code",
        400,
    )
    assert_refused(
        session,
        lambda: services.enable_dev_task(session, other, task.id, ["9"]),
        "dev_task_taken_by_other",
        409,
    )


def test_billing_needs_finance_and_registers_once(session: Session, users: dict[str, User]) -> None:
    ticket = open_ticket(session, users["agent"])
    advance_to(session, users, ticket, 5)
    request = ticket.billing_request
    assert request is not None
    assert_refused(
        session,
        lambda: services.register_billing(session, users["agent"], request.id, "NF-1"),
        "forbidden_role",
        403,
    )
    assert_refused(
        session,
        lambda: services.register_billing(session, users["finance"], request.id, " "),
        "missing_invoice_ref",
        400,
    )
    services.register_billing(session, users["finance"], request.id, "NF-1")
    session.commit()
    assert_refused(
        session,
        lambda: services.register_billing(session, users["finance"], request.id, "NF-2"),
        "billing_already_registered",
        409,
    )


def test_close_needs_registered_billing(session: Session, users: dict[str, User]) -> None:
    ticket = open_ticket(session, users["agent"])
    assert_refused(
        session, lambda: services.close_ticket(session, users["agent"], ticket.id), "steps_pending", 409
    )
    advance_to(session, users, ticket, 5)
    assert_refused(
        session,
        lambda: services.close_ticket(session, users["agent"], ticket.id),
        "billing_not_registered",
        409,
    )
    assert_refused(
        session, lambda: services.close_ticket(session, users["finance"], ticket.id), "forbidden_role", 403
    )


def test_closed_ticket_refuses_changes(session: Session, users: dict[str, User]) -> None:
    ticket = open_ticket(session, users["agent"])
    advance_to(session, users, ticket, 5)
    request = ticket.billing_request
    assert request is not None
    services.register_billing(session, users["finance"], request.id, "NF-9")
    services.close_ticket(session, users["agent"], ticket.id)
    session.commit()
    assert_refused(
        session, lambda: services.close_ticket(session, users["agent"], ticket.id), "ticket_closed", 409
    )
    assert_refused(
        session,
        lambda: services.assign_ticket(session, users["agent"], ticket.id, "agent2@test.example"),
        "ticket_closed",
        409,
    )
    assert_refused(
        session,
        lambda: services.complete_step(session, users["agent"], ticket.id, "billing"),
        "ticket_closed",
        409,
    )


def test_open_ticket_by_hand_validates_cnpj(session: Session, users: dict[str, User]) -> None:
    assert_refused(
        session, lambda: open_ticket(session, users["agent"], cnpj="52.601.815/0001-21"), "invalid_cnpj", 400
    )
    assert_refused(session, lambda: open_ticket(session, users["developer"]), "forbidden_role", 403)


def test_ticket_from_mail_with_missing_data_is_flagged(session: Session, users: dict[str, User]) -> None:
    ticket = services.open_ticket(
        session,
        None,
        customer_name="Drogaria Sem Dados",
        cnpj="123",
        establishment_codes=[],
        strict=False,
        contract_evidence="<m1@boavista>",
    )
    session.commit()
    assert ticket.flags[0] == "incomplete_data"
    assert {"invalid_cnpj", "missing_establishment_code"} <= set(ticket.flags)
    assert ticket.step("contract").status == "done" and ticket.step("contract").evidence == "<m1@boavista>"
    assert ticket.current_step == "dev_handoff"


def test_assignment_only_to_agents(session: Session, users: dict[str, User]) -> None:
    ticket = open_ticket(session, users["agent"])
    assert_refused(
        session,
        lambda: services.assign_ticket(session, users["agent"], ticket.id, "developer@test.example"),
        "assignee_not_agent",
        400,
    )
    assert_refused(
        session,
        lambda: services.assign_ticket(session, users["agent"], ticket.id, "nobody@test.example"),
        "unknown_user",
        400,
    )
    services.assign_ticket(session, users["agent"], ticket.id, "agent2@test.example")
    session.commit()
    assert ticket.assignee_id == users["agent2"].id


def test_unknown_ticket_and_step(session: Session, users: dict[str, User]) -> None:
    ticket = open_ticket(session, users["agent"])
    assert_refused(
        session,
        lambda: services.complete_step(session, users["agent"], 999999, "contract"),
        "ticket_not_found",
        404,
    )
    assert_refused(
        session,
        lambda: services.complete_step(session, users["agent"], ticket.id, "nope"),
        "unknown_step",
        404,
    )


def test_extra_step_guard_blocks_without_change(session: Session, users: dict[str, User]) -> None:
    """Other packages add guards (reconciliation: divergences triaged) without onboarding knowing them."""
    ticket = open_ticket(session, users["agent"])

    def not_yet(_db: Session, _t: Ticket) -> tuple[str, str]:
        return ("custom_block", "Ainda não.")

    services.add_step_guard(StepKey.CONTRACT, not_yet)
    try:
        assert_refused(
            session,
            lambda: services.complete_step(session, users["agent"], ticket.id, "contract"),
            "custom_block",
            409,
        )
    finally:
        services._extra_guards[StepKey.CONTRACT].remove(not_yet)
