"""The workflow endpoints of /api/v1: tickets, steps, assignment, dev tasks, billing, closing.

Every authenticated role may read the lists and tickets; only the roles of SPEC section 5 (and
admin) may change state. The rules themselves live in `onboarding.services`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from onboarding import queries, services
from onboarding.api import ApiCall, endpoint
from onboarding.api_schemas import (
    BillingListQuery,
    BillingRegister,
    BillingRequestOut,
    DevTaskEnable,
    DevTaskListQuery,
    DevTaskOut,
    PageOut,
    PageQuery,
    StepComplete,
    TicketAssign,
    TicketCreate,
    TicketListQuery,
    TicketOut,
    TicketSummaryOut,
    billing_out,
    dev_task_out,
    ticket_out,
    ticket_summary_out,
)
from onboarding.models import BillingRequest, DevTask, Ticket, User

TicketPage = PageOut[TicketSummaryOut]
DevTaskPage = PageOut[DevTaskOut]
BillingPage = PageOut[BillingRequestOut]


def _load_ticket(db: Session, ticket_id: int) -> Ticket:
    return services.get_ticket(db, ticket_id)  # 404 with the service's code and message


def _paged(db: Session, query: Select[Any], args: PageQuery) -> tuple[list[Any], int]:
    total = db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = db.scalars(query.offset((args.page - 1) * args.per_page).limit(args.per_page)).all()
    return list(items), total


# --- tickets ---------------------------------------------------------------------------------


@endpoint("GET", "/tickets", summary="Lista os chamados", query=TicketListQuery, response=TicketPage)
def list_tickets(call: ApiCall) -> TicketPage:
    args: TicketListQuery = call.query
    assignee_id: int | None = None
    if args.assignee:
        user = call.db.scalars(select(User).where(User.email == args.assignee.strip().lower())).first()
        assignee_id = user.id if user is not None else -1  # an unknown person is assigned nothing
    filters = queries.TicketFilter(status=args.status, step=args.step, assignee_id=assignee_id, q=args.q)
    page = queries.list_tickets(call.db, filters, args.page, args.per_page)
    return TicketPage(
        items=[ticket_summary_out(t) for t in page.items],
        page=page.page,
        per_page=page.per_page,
        total=page.total,
    )


@endpoint(
    "POST",
    "/tickets",
    summary="Abre um chamado manualmente",
    roles=services.AGENTS,
    body=TicketCreate,
    response=TicketOut,
    status=201,
)
def create_ticket(call: ApiCall) -> TicketOut:
    body: TicketCreate = call.body
    ticket = services.open_ticket(
        call.db,
        call.user,
        customer_name=body.customer_name,
        cnpj=body.cnpj,
        establishment_codes=body.establishment_codes,
        contact_email=body.contact_email,
        contact_name=body.contact_name,
        contact_phone=body.contact_phone,
    )
    return ticket_out(_load_ticket(call.db, ticket.id))


@endpoint("GET", "/tickets/<int:ticket_id>", summary="Um chamado com suas etapas", response=TicketOut)
def get_ticket(call: ApiCall, ticket_id: int) -> TicketOut:
    return ticket_out(_load_ticket(call.db, ticket_id))


@endpoint(
    "POST",
    "/tickets/<int:ticket_id>/steps/<key>/complete",
    summary="Conclui uma etapa, se as regras permitirem",
    roles=services.AGENTS,
    body=StepComplete,
    response=TicketOut,
)
def complete_step(call: ApiCall, ticket_id: int, key: str) -> TicketOut:
    services.complete_step(call.db, call.user, ticket_id, key, notes=call.body.notes)
    return ticket_out(_load_ticket(call.db, ticket_id))


@endpoint(
    "POST",
    "/tickets/<int:ticket_id>/assign",
    summary="Atribui o chamado a um agente",
    roles=services.AGENTS,
    body=TicketAssign,
    response=TicketOut,
)
def assign_ticket(call: ApiCall, ticket_id: int) -> TicketOut:
    services.assign_ticket(call.db, call.user, ticket_id, call.body.user_email)
    return ticket_out(_load_ticket(call.db, ticket_id))


@endpoint(
    "POST",
    "/tickets/<int:ticket_id>/close",
    summary="Encerra o chamado depois da cobrança registrada",
    roles=services.AGENTS,
    response=TicketOut,
)
def close_ticket(call: ApiCall, ticket_id: int) -> TicketOut:
    services.close_ticket(call.db, call.user, ticket_id)
    return ticket_out(_load_ticket(call.db, ticket_id))


# --- dev tasks -------------------------------------------------------------------------------


@endpoint(
    "GET",
    "/dev-tasks",
    summary="Lista as tarefas de integração",
    query=DevTaskListQuery,
    response=DevTaskPage,
)
def list_dev_tasks(call: ApiCall) -> DevTaskPage:
    args: DevTaskListQuery = call.query
    query = select(DevTask).options(selectinload(DevTask.assignee)).order_by(DevTask.id)
    if args.ticket_id is not None:
        query = query.where(DevTask.ticket_id == args.ticket_id)
    if args.status is not None:
        query = query.where(DevTask.status == args.status)
    items, total = _paged(call.db, query, args)
    return DevTaskPage(
        items=[dev_task_out(t) for t in items], page=args.page, per_page=args.per_page, total=total
    )


@endpoint(
    "POST",
    "/dev-tasks/<int:task_id>/take",
    summary="Assume a tarefa de integração",
    roles=services.DEVELOPERS,
    response=DevTaskOut,
)
def take_dev_task(call: ApiCall, task_id: int) -> DevTaskOut:
    return dev_task_out(services.take_dev_task(call.db, call.user, task_id))


@endpoint(
    "POST",
    "/dev-tasks/<int:task_id>/enable",
    summary="Habilita a integração para os códigos de estabelecimento",
    roles=services.DEVELOPERS,
    body=DevTaskEnable,
    response=DevTaskOut,
)
def enable_dev_task(call: ApiCall, task_id: int) -> DevTaskOut:
    task = services.enable_dev_task(call.db, call.user, task_id, call.body.establishment_codes)
    return dev_task_out(task)


@endpoint(
    "POST",
    "/dev-tasks/<int:task_id>/return",
    summary="Devolve a integração ao agente",
    roles=services.DEVELOPERS,
    response=DevTaskOut,
)
def return_dev_task(call: ApiCall, task_id: int) -> DevTaskOut:
    return dev_task_out(services.return_dev_task(call.db, call.user, task_id))


# --- billing ---------------------------------------------------------------------------------


@endpoint(
    "GET",
    "/billing-requests",
    summary="Lista as solicitações de cobrança",
    query=BillingListQuery,
    response=BillingPage,
)
def list_billing_requests(call: ApiCall) -> BillingPage:
    args: BillingListQuery = call.query
    query = select(BillingRequest).order_by(BillingRequest.id)
    if args.ticket_id is not None:
        query = query.where(BillingRequest.ticket_id == args.ticket_id)
    if args.status is not None:
        query = query.where(BillingRequest.status == args.status)
    items, total = _paged(call.db, query, args)
    return BillingPage(
        items=[billing_out(r) for r in items], page=args.page, per_page=args.per_page, total=total
    )


@endpoint(
    "POST",
    "/billing-requests/<int:request_id>/register",
    summary="Registra a cobrança (libera o encerramento)",
    roles=services.FINANCE,
    body=BillingRegister,
    response=BillingRequestOut,
)
def register_billing(call: ApiCall, request_id: int) -> BillingRequestOut:
    return billing_out(services.register_billing(call.db, call.user, request_id, call.body.invoice_ref))
