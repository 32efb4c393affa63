"""Read side shared by the web pages and the API: filtered, searched, paged ticket lists."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from onboarding.models import Customer, EstablishmentCode, Ticket

T = TypeVar("T")
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
TICKET_NUMBER = re.compile(r"^(?:#?EX-?)?0*(\d{1,9})$", re.IGNORECASE)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class TicketFilter:
    status: str | None = None
    step: str | None = None
    assignee_id: int | None = None
    q: str | None = None


def page_args(page: Any, per_page: Any) -> tuple[int, int]:
    """Clamp ?page= and ?per_page= to sane values (bad input falls back to the defaults)."""
    try:
        page_number = max(1, int(page))
    except (TypeError, ValueError):
        page_number = 1
    try:
        size = min(MAX_PER_PAGE, max(1, int(per_page)))
    except (TypeError, ValueError):
        size = DEFAULT_PER_PAGE
    return page_number, size


def search_condition(q: str) -> Any:
    """`q` matches a CNPJ with any punctuation, an establishment code, a customer name or a number."""
    q = q.strip()
    digits = re.sub(r"\D", "", q)
    conditions: list[Any] = [Customer.name.ilike(f"%{q}%"), Customer.trade_name.ilike(f"%{q}%")]
    codes = select(EstablishmentCode.customer_id).where(EstablishmentCode.code == q)
    conditions.append(Customer.id.in_(codes))
    if len(digits) >= 8 and len(digits) <= 14 and not re.search(r"[A-Za-z]", q):
        conditions.append(Customer.cnpj.startswith(digits))
    number = TICKET_NUMBER.match(q)
    if number:
        conditions.append(Ticket.number == f"EX-{int(number.group(1)):06d}")
    return or_(*conditions)


def ticket_query(filters: TicketFilter) -> Select[tuple[Ticket]]:
    query = select(Ticket).join(Ticket.customer)
    if filters.status:
        query = query.where(Ticket.status == filters.status)
    if filters.step:
        query = query.where(Ticket.current_step == filters.step)
    if filters.assignee_id is not None:
        query = query.where(Ticket.assignee_id == filters.assignee_id)
    if filters.q and filters.q.strip():
        query = query.where(search_condition(filters.q))
    return query


def list_tickets(
    db: Session, filters: TicketFilter, page: int = 1, per_page: int = DEFAULT_PER_PAGE
) -> Page[Ticket]:
    """Oldest first (the queue is worked by age), paged."""
    base = ticket_query(filters)
    total = db.scalar(select(func.count()).select_from(base.order_by(None).subquery())) or 0
    items = db.scalars(
        base.options(
            selectinload(Ticket.customer).selectinload(Customer.establishments),
            selectinload(Ticket.assignee),
        )
        .order_by(Ticket.created_at, Ticket.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return Page(list(items), page, per_page, total)
