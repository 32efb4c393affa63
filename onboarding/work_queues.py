"""Read side of the developer and finance queues: paged lists of dev tasks and billing requests."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import NamedTuple

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from onboarding.models import BillingRequest, Customer, DevTask, Ticket, User
from onboarding.queries import Page


def _ticket_options() -> list[object]:
    return [selectinload(Ticket.customer).selectinload(Customer.establishments)]


def list_dev_tasks(
    db: Session,
    statuses: Iterable[str] | None,
    page: int,
    per_page: int,
    assignee_id: int | None = None,
) -> Page[DevTask]:
    """Oldest first; `statuses` None means every status."""
    query = select(DevTask)
    if statuses is not None:
        query = query.where(DevTask.status.in_(list(statuses)))
    if assignee_id is not None:
        query = query.where(DevTask.assignee_id == assignee_id)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = db.scalars(
        query.options(
            selectinload(DevTask.ticket).options(*_ticket_options()),  # type: ignore[arg-type]
            selectinload(DevTask.assignee),
        )
        .order_by(DevTask.created_at, DevTask.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return Page(list(items), page, per_page, total)


def list_billing_requests(
    db: Session, statuses: Iterable[str] | None, page: int, per_page: int
) -> Page[BillingRequest]:
    query = select(BillingRequest)
    if statuses is not None:
        query = query.where(BillingRequest.status.in_(list(statuses)))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = db.scalars(
        query.options(
            selectinload(BillingRequest.ticket).options(*_ticket_options()),  # type: ignore[arg-type]
            selectinload(BillingRequest.registered_by),
        )
        .order_by(BillingRequest.created_at, BillingRequest.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return Page(list(items), page, per_page, total)


def users_by_id(db: Session, ids: Iterable[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u for u in db.scalars(select(User).where(User.id.in_(wanted)))}


class AgentChoice(NamedTuple):
    id: int
    email: str
    display_name: str


AGENT_CACHE_SECONDS = 10.0


def assignable_agents(db: Session) -> list[AgentChoice]:
    """Active agents and admins, by name. Every queue page shows them, and they change rarely: the
    list is kept per app for a few seconds instead of being asked on every request."""
    cache = current_app.extensions.setdefault("web_agent_choices", {})
    now = time.monotonic()
    cached = cache.get("agents")
    if cached is not None and cached[0] > now:
        return cached[1]  # type: ignore[no-any-return]
    rows = db.execute(
        select(User.id, User.email, User.name)
        .where(User.active.is_(True), User.role.in_(["agent", "admin"]))
        .order_by(User.name, User.email)
    ).all()
    agents = [AgentChoice(row.id, row.email, row.name or row.email) for row in rows]
    cache["agents"] = (now + AGENT_CACHE_SECONDS, agents)
    return agents
