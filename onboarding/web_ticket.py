"""The ticket page: the five-step checklist with guidance, assignment, closing and the timeline."""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from onboarding import db, services
from onboarding.errors import InvalidInput
from onboarding.models import (
    BillingRequest,
    Customer,
    DevTask,
    StepKey,
    StepStatus,
    Ticket,
    TicketStep,
    User,
)
from onboarding.web_billing import BILLING_STATUS_LABELS
from onboarding.web_common import AGENT_ROLES, actor, bp, role_refusal, run_action
from onboarding.web_devtasks import DEV_STATUS_LABELS
from onboarding.web_hooks import contributed_panels
from onboarding.web_timeline import flag_label, step_label, ticket_timeline
from onboarding.work_queues import assignable_agents

MAX_NOTES = 5000


@dataclass(frozen=True)
class StepView:
    step: TicketStep
    label: str
    done: bool
    current: bool
    blockers: list[str]  # why it cannot be completed now by this user; empty = it can

    @property
    def can_complete(self) -> bool:
        return not self.done and not self.blockers


def load_ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.scalars(
        select(Ticket)
        .where(Ticket.id == ticket_id)
        .options(
            selectinload(Ticket.steps).selectinload(TicketStep.completed_by),
            selectinload(Ticket.customer).selectinload(Customer.establishments),
            selectinload(Ticket.assignee),
            selectinload(Ticket.dev_task).selectinload(DevTask.assignee),
            selectinload(Ticket.billing_request).selectinload(BillingRequest.registered_by),
        )
    ).one_or_none()
    if ticket is None:
        abort(404)
    return ticket


def _role_reason(user: User, key: StepKey) -> str | None:
    roles = services.STEP_RULES[key].roles
    if user.role in roles:
        return None
    return role_refusal(roles, "concluir esta etapa")


def step_views(session: Session, ticket: Ticket, user: User) -> list[StepView]:
    views = []
    for step in ticket.steps:
        key = StepKey(step.key)
        done = step.status == StepStatus.DONE
        blockers: list[str] = []
        if not done:
            blocked = services.step_blocker(session, ticket, key)
            if blocked is not None:
                blockers.append(blocked[1])
            role = _role_reason(user, key)
            if role is not None:
                blockers.append(role)
        views.append(StepView(step, step_label(key), done, ticket.current_step == step.key, blockers))
    return views


def ticket_page(ticket_id: int, notes_draft: str = "") -> str:
    session = db.session()
    user = actor()
    ticket = load_ticket(session, ticket_id)
    close_blocked = services.close_blocker(ticket)
    return render_template(
        "onboarding/ticket.html",
        ticket=ticket,
        steps=step_views(session, ticket, user),
        notes_draft=notes_draft,
        is_agent=user.role in AGENT_ROLES,
        close_reason=close_blocked[1] if close_blocked else None,
        agents=assignable_agents(session),
        flags=[flag_label(f) for f in ticket.flags],
        dev_status_labels=DEV_STATUS_LABELS,
        billing_status_labels=BILLING_STATUS_LABELS,
        panels=contributed_panels(session, ticket, user),
        timeline=ticket_timeline(session, ticket),
    )


@bp.get("/tickets/<int:ticket_id>")
def ticket(ticket_id: int) -> ResponseReturnValue:
    return ticket_page(ticket_id)


def _to_ticket(ticket_id: int) -> str:
    return url_for("web.ticket", ticket_id=ticket_id)


@bp.post("/tickets/<int:ticket_id>/steps/<key>/complete")
def complete_step(ticket_id: int, key: str) -> ResponseReturnValue:
    notes = (request.form.get("notes") or "").strip()

    def complete(session: Session, user: User) -> TicketStep:
        if len(notes) > MAX_NOTES:
            services.require_role(user, services.AGENTS, "concluir etapa")
            raise InvalidInput(
                "notes_too_long", f"As observações devem ter no máximo {MAX_NOTES} caracteres."
            )
        return services.complete_step(session, user, ticket_id, key, notes=notes)

    return run_action(
        complete,
        success=lambda step: f"Etapa \u201c{step_label(step.key)}\u201d concluída.",
        redirect_to=_to_ticket(ticket_id),
        back=lambda: ticket_page(ticket_id, notes),
    )


@bp.post("/tickets/<int:ticket_id>/assign")
def assign_ticket(ticket_id: int) -> ResponseReturnValue:
    email = (request.form.get("user_email") or "").strip()
    return run_action(
        lambda session, user: services.assign_ticket(session, user, ticket_id, email),
        success=lambda t: f"Chamado atribuído a {t.assignee.display_name if t.assignee else email}.",
        redirect_to=_to_ticket(ticket_id),
        back=lambda: ticket_page(ticket_id),
    )


@bp.post("/tickets/<int:ticket_id>/close")
def close_ticket(ticket_id: int) -> ResponseReturnValue:
    return run_action(
        lambda session, user: services.close_ticket(session, user, ticket_id),
        success=lambda t: f"Chamado {t.number} encerrado.",
        redirect_to=_to_ticket(ticket_id),
        back=lambda: ticket_page(ticket_id),
    )
