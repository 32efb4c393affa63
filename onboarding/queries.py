"""Read side shared by the web pages and the API: filtered, searched, paged ticket lists."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select, union
from sqlalchemy.orm import Session, joinedload

from onboarding.models import Customer, EstablishmentCode, Ticket, User
from onboarding.search_text import fold

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
    total_capped: bool = False  # `total` stopped counting at the caller's count_limit

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
    """`q` matches a CNPJ with any punctuation, an establishment code, a customer name or a number.

    Built as `ticket.id IN (a UNION of small index-friendly selects)` rather than one OR across
    joined tables, so PostgreSQL answers each branch from its own index (trigram GIN on the names,
    pattern btree on the CNPJ, btree on codes and numbers) instead of scanning every ticket.
    """
    q = q.strip()
    digits = re.sub(r"\D", "", q)
    pattern = f"%{_escape_like(fold(q))}%"
    customers: list[Any] = [
        select(Customer.id).where(Customer.search_name.like(pattern, escape="\\")),
        select(EstablishmentCode.customer_id).where(EstablishmentCode.code == q),
    ]
    if len(digits) >= 8 and len(digits) <= 14 and not re.search(r"[A-Za-z]", q):
        customers.append(select(Customer.id).where(Customer.cnpj.startswith(digits, autoescape=True)))
    branches: list[Any] = [select(Ticket.id).where(Ticket.customer_id.in_(union(*customers)))]
    number = TICKET_NUMBER.match(q)
    if number:
        branches.append(select(Ticket.id).where(Ticket.number == f"EX-{int(number.group(1)):06d}"))
    return Ticket.id.in_(union(*branches))


def _escape_like(value: str) -> str:
    """A typed % or _ matches itself, not any text."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def ticket_query(filters: TicketFilter) -> Select[tuple[Ticket]]:
    query = select(Ticket)
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
    db: Session,
    filters: TicketFilter,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
    *,
    newest_first: bool = False,
    count_limit: int | None = None,
    lean: bool = False,
) -> Page[Ticket]:
    """Oldest first by default (the queue is worked by age), paged.

    `count_limit` bounds the count (a screen shows "more than N" past it), so a broad filter over
    a large table never pays for counting every match. `lean` loads only what a queue row shows:
    customer name, trade name and CNPJ, assignee name and e-mail, and no establishment collection
    (touching it raises; ask `establishment_codes_for` instead).
    """
    base = ticket_query(filters)
    order = (Ticket.created_at.desc(), Ticket.id.desc()) if newest_first else (Ticket.created_at, Ticket.id)
    if lean:
        options: tuple[Any, ...] = (
            joinedload(Ticket.customer)
            .load_only(Customer.name, Customer.trade_name, Customer.cnpj)
            .raiseload(Customer.establishments),
            joinedload(Ticket.assignee).load_only(User.email, User.name),
        )
    else:
        options = (
            joinedload(Ticket.customer).selectinload(Customer.establishments),
            joinedload(Ticket.assignee),
        )
    offset = (page - 1) * per_page
    items = list(db.scalars(base.options(*options).order_by(*order).offset(offset).limit(per_page)))
    if len(items) < per_page and (items or page == 1):
        return Page(items, page, per_page, offset + len(items))  # the last page: no count needed
    total, capped = _count(db, base, count_limit)
    return Page(items, page, per_page, total, capped)


def establishment_codes_for(db: Session, customer_ids: Iterable[int]) -> dict[int, list[str]]:
    """Each customer's establishment codes, in the order they were added, in one query."""
    wanted = set(customer_ids)
    codes: dict[int, list[str]] = {customer_id: [] for customer_id in wanted}
    if wanted:
        rows = db.execute(
            select(EstablishmentCode.customer_id, EstablishmentCode.code)
            .where(EstablishmentCode.customer_id.in_(wanted))
            .order_by(EstablishmentCode.id)
        )
        for customer_id, code in rows:
            codes[customer_id].append(code)
    return codes


def _count(db: Session, query: Select[tuple[Ticket]], limit: int | None) -> tuple[int, bool]:
    if limit is None:
        counted = query.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
        return db.scalar(counted) or 0, False
    matches = query.with_only_columns(Ticket.id).order_by(None).limit(limit + 1).subquery()
    total = db.scalar(select(func.count()).select_from(matches)) or 0
    return min(total, limit), total > limit
