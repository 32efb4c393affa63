"""Pydantic models of the workflow API: what requests may carry and what responses hold.

The endpoints validate with these models and the OpenAPI document is generated from them, so the
two cannot drift. Request bodies are strict (no type coercion, unknown fields refused); query
strings are lax (they are text on the wire). Lengths follow the database columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints, WithJsonSchema

from onboarding.models import (
    BillingRequest,
    BillingStatus,
    DevTask,
    DevTaskStatus,
    StepKey,
    StepStatus,
    Ticket,
    TicketStatus,
    User,
)
from onboarding.queries import DEFAULT_PER_PAGE, MAX_PER_PAGE

T = TypeVar("T")

# ISO 8601 with an explicit offset ("+00:00"), not pydantic's "Z".
Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Code = Annotated[str, StringConstraints(max_length=40)]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class RequestModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class QueryModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


# --- requests --------------------------------------------------------------------------------


class PageQuery(QueryModel):
    page: int = Field(1, ge=1)
    per_page: int = Field(DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE)


class TicketListQuery(PageQuery):
    status: TicketStatus | None = None
    step: StepKey | None = Field(None, description="A etapa atual do chamado.")
    q: str | None = Field(
        None, description="CNPJ (com ou sem pontuação), código de estabelecimento, nome ou número."
    )
    assignee: str | None = Field(None, description="E-mail do responsável.")


class DevTaskListQuery(PageQuery):
    ticket_id: int | None = None
    status: DevTaskStatus | None = None


class BillingListQuery(PageQuery):
    ticket_id: int | None = None
    status: BillingStatus | None = None


class TicketCreate(RequestModel):
    customer_name: str = Field(min_length=1, max_length=200)
    cnpj: str = Field(max_length=32, description="Com ou sem pontuação; os dígitos verificadores valem.")
    establishment_codes: list[Code] = Field(max_length=50)
    contact_email: Email
    contact_name: str = Field("", max_length=200)
    contact_phone: str = Field("", max_length=40)


class StepComplete(RequestModel):
    notes: str = Field("", max_length=10000)


class TicketAssign(RequestModel):
    user_email: str = Field(min_length=1, max_length=254)


class DevTaskEnable(RequestModel):
    establishment_codes: list[Code] = Field(max_length=50)


class BillingRegister(RequestModel):
    invoice_ref: str = Field(min_length=1, max_length=100)


# --- responses -------------------------------------------------------------------------------


class CustomerOut(ResponseModel):
    name: str
    cnpj: str | None = Field(description="Só os 14 dígitos; null quando desconhecido.")
    establishment_codes: list[str]


class StepOut(ResponseModel):
    key: StepKey
    status: StepStatus
    completed_by: str | None = Field(description="E-mail de quem concluiu; null se foi o sistema.")
    completed_at: Timestamp | None
    notes: str


class TicketSummaryOut(ResponseModel):
    id: int
    number: str
    subject: str
    status: TicketStatus
    current_step: StepKey | None
    customer: CustomerOut
    flags: list[str]
    assignee: str | None
    created_at: Timestamp


class TicketOut(ResponseModel):
    id: int
    number: str
    subject: str
    status: TicketStatus
    current_step: StepKey | None
    customer: CustomerOut
    flags: list[str]
    steps: list[StepOut]
    assignee: str | None


class DevTaskOut(ResponseModel):
    id: int
    ticket_id: int
    status: DevTaskStatus
    assignee: str | None
    establishment_codes: list[str]


class BillingRequestOut(ResponseModel):
    id: int
    ticket_id: int
    status: BillingStatus
    invoice_ref: str | None


class PageOut(ResponseModel, Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int


# --- ORM to response -------------------------------------------------------------------------


def _email(user: User | None) -> str | None:
    return user.email if user is not None else None


def customer_out(ticket: Ticket) -> CustomerOut:
    customer = ticket.customer
    return CustomerOut(
        name=customer.name, cnpj=customer.cnpj, establishment_codes=customer.establishment_codes
    )


def ticket_summary_out(ticket: Ticket) -> TicketSummaryOut:
    return TicketSummaryOut(
        id=ticket.id,
        number=ticket.number or "",
        subject=ticket.subject,
        status=TicketStatus(ticket.status),
        current_step=StepKey(ticket.current_step) if ticket.current_step else None,
        customer=customer_out(ticket),
        flags=list(ticket.flags),
        assignee=_email(ticket.assignee),
        created_at=ticket.created_at,
    )


def ticket_out(ticket: Ticket) -> TicketOut:
    return TicketOut(
        id=ticket.id,
        number=ticket.number or "",
        subject=ticket.subject,
        status=TicketStatus(ticket.status),
        current_step=StepKey(ticket.current_step) if ticket.current_step else None,
        customer=customer_out(ticket),
        flags=list(ticket.flags),
        steps=[
            StepOut(
                key=StepKey(step.key),
                status=StepStatus(step.status),
                completed_by=_email(step.completed_by),
                completed_at=step.completed_at,
                notes=step.notes,
            )
            for step in ticket.steps
        ],
        assignee=_email(ticket.assignee),
    )


def dev_task_out(task: DevTask) -> DevTaskOut:
    return DevTaskOut(
        id=task.id,
        ticket_id=task.ticket_id,
        status=DevTaskStatus(task.status),
        assignee=_email(task.assignee),
        establishment_codes=list(task.establishment_codes),
    )


def billing_out(request: BillingRequest) -> BillingRequestOut:
    return BillingRequestOut(
        id=request.id,
        ticket_id=request.ticket_id,
        status=BillingStatus(request.status),
        invoice_ref=request.invoice_ref,
    )
