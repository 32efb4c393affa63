"""JSON API of the mail package under /api/v1, on the shared `onboarding.api` shell.

Triage and quarantine lists and their actions for agents; a ticket's mail for every role.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, RootModel, WithJsonSchema, model_validator

from mail_ingest import actions
from onboarding.api import ApiCall, ApiError, endpoint
from onboarding.api_schemas import QueryModel, ResponseModel
from onboarding.models import Role
from onboarding.queries import DEFAULT_PER_PAGE, MAX_PER_PAGE, page_args

AGENT_ROLES = frozenset({Role.AGENT, Role.ADMIN})
MESSAGES_PER_PAGE = 100

IsoTimestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


# --- models ----------------------------------------------------------------------------------


def _clamped_paging(data: Any, default_per_page: int) -> Any:
    """Bad or out-of-range paging falls back or is clamped, as the web lists do (never a 400)."""
    if not isinstance(data, dict):
        return data
    page, per_page = page_args(data.get("page", 1), data.get("per_page", default_per_page))
    return {**data, "page": page, "per_page": per_page}


class MailPageQuery(QueryModel):
    page: int = Field(1, ge=1)
    per_page: int = Field(DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE)

    @model_validator(mode="before")
    @classmethod
    def _clamp(cls, data: Any) -> Any:
        return _clamped_paging(data, DEFAULT_PER_PAGE)


class TicketMessagesQuery(QueryModel):
    page: int = Field(1, ge=1)
    per_page: int = Field(MESSAGES_PER_PAGE, ge=1, le=MAX_PER_PAGE)

    @model_validator(mode="before")
    @classmethod
    def _clamp(cls, data: Any) -> Any:
        return _clamped_paging(data, MESSAGES_PER_PAGE)


class _Aliased(ResponseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class MailMessageOut(_Aliased):
    id: int
    message_id: str
    from_: str = Field(alias="from")
    from_name: str
    subject: str
    received_at: IsoTimestamp
    reason: str


class MailPageOut(ResponseModel):
    items: list[MailMessageOut]
    page: int
    per_page: int
    total: int


class TicketMessageOut(_Aliased):
    id: int
    direction: str = Field(description='"in" (recebida) ou "out" (enviada).')
    from_: str = Field(alias="from")
    subject: str
    received_at: IsoTimestamp
    message_id: str
    kind: str


class TicketMessagesOut(ResponseModel):
    items: list[TicketMessageOut]
    page: int
    per_page: int
    total: int


_TICKET_FROM_MAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customer_name": {"type": "string"},
        "cnpj": {"type": ["string", "null"]},
        "establishment_codes": {"type": "array", "items": {"type": "string"}},
        "contact_email": {"type": "string"},
        "contract_done": {"type": "boolean", "default": False},
    },
}


class TicketFromMailIn(RootModel[Annotated[Any, WithJsonSchema(_TICKET_FROM_MAIL_SCHEMA)]]):
    """Checked field by field by the services (their error codes); the shell only parses JSON."""


class TicketCreatedOut(ResponseModel):
    id: int
    number: str | None


# --- endpoints -------------------------------------------------------------------------------


def _paged(call: ApiCall, query: Any) -> MailPageOut:
    result = actions.list_page(call.db, query, call.query.page, call.query.per_page)
    return MailPageOut(
        items=[MailMessageOut.model_validate(actions.message_summary(m)) for m in result.items],
        page=result.page,
        per_page=result.per_page,
        total=result.total,
    )


@endpoint(
    "GET",
    "/mail/triage",
    summary="Mensagens que não abriram chamado, à espera de um atendente",
    roles=AGENT_ROLES,
    query=MailPageQuery,
    response=MailPageOut,
)
def mail_triage(call: ApiCall) -> MailPageOut:
    return _paged(call, actions.triage_query())


@endpoint(
    "GET",
    "/mail/quarantine",
    summary="Mensagens em quarentena",
    roles=AGENT_ROLES,
    query=MailPageQuery,
    response=MailPageOut,
)
def mail_quarantine(call: ApiCall) -> MailPageOut:
    return _paged(call, actions.quarantine_query())


@endpoint(
    "POST",
    "/mail/triage/<int:inbound_id>/dismiss",
    summary="Descarta uma mensagem da triagem",
    roles=AGENT_ROLES,
    response=MailMessageOut,
)
def mail_triage_dismiss(call: ApiCall, inbound_id: int) -> MailMessageOut:
    message = actions.dismiss(call.db, call.user, inbound_id)
    return MailMessageOut.model_validate(actions.message_summary(message))


@endpoint(
    "POST",
    "/mail/triage/<int:inbound_id>/ticket",
    summary="Abre um chamado a partir de uma mensagem da triagem",
    roles=AGENT_ROLES,
    body=TicketFromMailIn,
    response=TicketCreatedOut,
    status=201,
)
def mail_triage_open_ticket(call: ApiCall, inbound_id: int) -> TicketCreatedOut:
    body = call.body.root
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "Envie um objeto JSON.")
    codes = body.get("establishment_codes") or []
    if not isinstance(codes, list):
        raise ApiError(400, "invalid_establishment_codes", "establishment_codes deve ser uma lista.")
    ticket = actions.open_ticket_from_mail(
        call.db,
        call.user,
        inbound_id,
        customer_name=str(body.get("customer_name") or ""),
        cnpj=str(body.get("cnpj") or "") or None,
        establishment_codes=[str(c) for c in codes],
        contact_email=str(body.get("contact_email") or ""),
        contract_done=bool(body.get("contract_done", False)),
    )
    return TicketCreatedOut(id=ticket.id, number=ticket.number)


@endpoint(
    "GET",
    "/tickets/<int:ticket_id>/messages",
    summary="As mensagens do chamado, recebidas e enviadas, da mais antiga à mais nova",
    query=TicketMessagesQuery,
    response=TicketMessagesOut,
)
def ticket_messages(call: ApiCall, ticket_id: int) -> TicketMessagesOut:
    items = actions.ticket_messages(call.db, ticket_id)
    page, per_page = call.query.page, call.query.per_page
    start = (page - 1) * per_page
    return TicketMessagesOut(
        items=[TicketMessageOut.model_validate(i) for i in items[start : start + per_page]],
        page=page,
        per_page=per_page,
        total=len(items),
    )
