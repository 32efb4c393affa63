"""Read side shared by the web pages and the API: filtered, searched, paged ticket lists.

The filters become SQL once per combination of filters in use (a "shape": which filters are set,
whether the search looks like a CNPJ or a ticket number) with bound parameters for the values, so
a request only fills in parameters. The queue page, asked on every click, reads plain rows in one
statement: building its ORM queries and loading ORM objects was half the CPU of the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, select, union
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session, joinedload

from onboarding.models import Customer, EstablishmentCode, Ticket, User
from onboarding.search_text import fold

T = TypeVar("T")
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
TICKET_NUMBER = re.compile(r"^(?:#?EX-?)?0*(\d{1,9})$", re.IGNORECASE)

TICKET = Ticket.__table__
CUSTOMER = Customer.__table__
ACCOUNT = User.__table__
CODE = EstablishmentCode.__table__


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


class QueueRow(NamedTuple):
    """One line of the agents' queue: what the page shows of a ticket, its customer and assignee."""

    id: int
    number: str | None
    status: str
    current_step: str | None
    flags: list[str]
    created_at: datetime
    customer_id: int
    customer_name: str
    cnpj: str | None
    assignee: str | None  # the assignee's display name
    codes: list[str]  # the customer's establishment codes, in the order they were added


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


@dataclass(frozen=True)
class _Shape:
    """Which filters a TicketFilter uses: one set of SQL statements per shape."""

    status: bool = False
    step: bool = False
    assignee: bool = False
    search: bool = False
    cnpj: bool = False  # the search text can be (the start of) a CNPJ
    number: bool = False  # the search text can be a ticket number


def _shape_and_params(filters: TicketFilter) -> tuple[_Shape, dict[str, Any]]:
    """The shape of `filters` and the values of its bound parameters.

    `q` matches a CNPJ with any punctuation, an establishment code, a customer name or a number.
    """
    params: dict[str, Any] = {}
    if filters.status:
        params["status"] = filters.status
    if filters.step:
        params["step"] = filters.step
    if filters.assignee_id is not None:
        params["assignee_id"] = filters.assignee_id
    q = (filters.q or "").strip()
    cnpj = number = False
    if q:
        params["pattern"] = f"%{_escape_like(fold(q))}%"  # see onboarding.search_text
        params["code"] = q
        digits = re.sub(r"\D", "", q)
        if 8 <= len(digits) <= 14 and not re.search(r"[A-Za-z]", q):
            cnpj = True
            params["cnpj_prefix"] = digits + "%"  # digits only: nothing to escape
        match = TICKET_NUMBER.match(q)
        if match:
            number = True
            params["number"] = f"EX-{int(match.group(1)):06d}"
    shape = _Shape("status" in params, "step" in params, "assignee_id" in params, bool(q), cnpj, number)
    return shape, params


@cache
def _conditions(shape: _Shape) -> tuple[ColumnElement[bool], ...]:
    conditions: list[ColumnElement[bool]] = []
    if shape.status:
        conditions.append(TICKET.c.status == bindparam("status"))
    if shape.step:
        conditions.append(TICKET.c.current_step == bindparam("step"))
    if shape.assignee:
        conditions.append(TICKET.c.assignee_id == bindparam("assignee_id"))
    if shape.search:
        conditions.append(search_condition(shape))
    return tuple(conditions)


def search_condition(shape: _Shape) -> ColumnElement[bool]:
    """`ticket.id IN (a UNION of small index-friendly selects)` rather than one OR across joined
    tables, so PostgreSQL answers each branch from its own index (trigram GIN on the folded names, pattern
    btree on the CNPJ, btree on codes and numbers) instead of scanning every ticket.
    """
    customers: list[Any] = [
        select(CUSTOMER.c.id).where(CUSTOMER.c.search_name.like(bindparam("pattern"), escape="\\")),
        select(CODE.c.customer_id).where(CODE.c.code == bindparam("code")),
    ]
    if shape.cnpj:
        customers.append(select(CUSTOMER.c.id).where(CUSTOMER.c.cnpj.like(bindparam("cnpj_prefix"))))
    branches: list[Any] = [select(TICKET.c.id).where(TICKET.c.customer_id.in_(union(*customers)))]
    if shape.number:
        branches.append(select(TICKET.c.id).where(TICKET.c.number == bindparam("number")))
    return TICKET.c.id.in_(union(*branches))


def _escape_like(value: str) -> str:
    """A typed % or _ matches itself, not any text."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _order(columns: Any, newest_first: bool) -> tuple[Any, ...]:
    if newest_first:
        return (columns.created_at.desc(), columns.id.desc())
    return (columns.created_at, columns.id)


@cache
def _count_statement(shape: _Shape, capped: bool) -> Select[tuple[int]]:
    """How many tickets match; `capped`: counting stops at the parameter `count_limit`."""
    if not capped:
        return select(func.count()).select_from(TICKET).where(*_conditions(shape))
    matches = select(TICKET.c.id).where(*_conditions(shape)).limit(bindparam("count_limit", type_=Integer))
    return select(func.count()).select_from(matches.subquery())


@cache
def _queue_statement(shape: _Shape, newest_first: bool) -> Select[Any]:
    """One page of queue rows, each ticket joined to its customer, its assignee and (one row per
    code) its customer's establishment codes: the whole page in one round trip."""
    page = (
        select(
            TICKET.c.id,
            TICKET.c.number,
            TICKET.c.status,
            TICKET.c.current_step,
            TICKET.c.flags,
            TICKET.c.created_at,
            TICKET.c.customer_id,
            CUSTOMER.c.name.label("customer_name"),
            CUSTOMER.c.cnpj,
            ACCOUNT.c.name.label("assignee_name"),
            ACCOUNT.c.email.label("assignee_email"),
        )
        .select_from(
            TICKET.join(CUSTOMER, CUSTOMER.c.id == TICKET.c.customer_id).outerjoin(
                ACCOUNT, ACCOUNT.c.id == TICKET.c.assignee_id
            )
        )
        .where(*_conditions(shape))
        .order_by(*_order(TICKET.c, newest_first))
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery("page")
    )
    return (
        select(page, CODE.c.code)
        .select_from(page.outerjoin(CODE, CODE.c.customer_id == page.c.customer_id))
        .order_by(*_order(page.c, newest_first), CODE.c.id)
    )


def queue_page(
    db: Session,
    filters: TicketFilter,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
    *,
    newest_first: bool = False,
    count_limit: int | None = None,
) -> Page[QueueRow]:
    """The queue's rows (oldest first by default), paged, in one query (two on a full page).

    `count_limit` bounds the count (a screen shows "more than N" past it), so a broad filter over
    a large table never pays for counting every match.
    """
    shape, params = _shape_and_params(filters)
    limits = {"limit": per_page, "offset": (page - 1) * per_page}
    rows = db.connection().execute(_queue_statement(shape, newest_first), {**params, **limits})
    return _page(db, _group_codes(rows), page, per_page, shape, params, count_limit)


def _page(
    db: Session,
    items: list[T],
    page: int,
    per_page: int,
    shape: _Shape,
    params: dict[str, Any],
    count_limit: int | None,
) -> Page[T]:
    """`items` as page `page`, the total counted only when this is not visibly the last page."""
    offset = (page - 1) * per_page
    if len(items) < per_page and (items or page == 1):
        return Page(items, page, per_page, offset + len(items))
    count = db.connection().execute
    if count_limit is None:
        return Page(items, page, per_page, count(_count_statement(shape, False), params).scalar_one())
    # one more than the limit tells "more than the limit" from "exactly the limit"
    total = count(_count_statement(shape, True), {**params, "count_limit": count_limit + 1}).scalar_one()
    return Page(items, page, per_page, min(total, count_limit), total > count_limit)


def _group_codes(rows: Result[Any]) -> list[QueueRow]:
    """Fold the one-row-per-code join back into one QueueRow per ticket (rows come grouped).

    A row is the ticket's columns in QueueRow's order, then assignee name and e-mail, then a code.
    """
    items: list[QueueRow] = []
    last_id = None
    for *ticket, assignee_name, assignee_email, code in rows:
        if ticket[0] != last_id:
            last_id = ticket[0]
            items.append(QueueRow(*ticket, assignee_name or assignee_email, []))  # display name
        if code is not None:
            items[-1].codes.append(code)
    return items


def list_tickets(
    db: Session, filters: TicketFilter, page: int = 1, per_page: int = DEFAULT_PER_PAGE
) -> Page[Ticket]:
    """Tickets as ORM objects with their customer, codes and assignee (the API), oldest first, paged."""
    shape, params = _shape_and_params(filters)
    query = (
        select(Ticket)
        .where(*_conditions(shape))
        .options(
            joinedload(Ticket.customer).selectinload(Customer.establishments), joinedload(Ticket.assignee)
        )
        .order_by(*_order(Ticket, False))
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return _page(db, list(db.scalars(query, params)), page, per_page, shape, params, None)
