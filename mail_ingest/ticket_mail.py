"""Mail from a ticket: the agent previews a template, edits it and sends it; replies; and the
automatic notifications queued when a step is completed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from mail_ingest import outbound
from mail_ingest.outbound_models import OutboundMail
from mail_ingest.templates import (
    ensure_no_placeholders,
    get_template,
    html_from_text,
    render_template_mail,
)
from onboarding import audit, db
from onboarding.errors import InvalidInput, WorkflowError
from onboarding.models import StepKey, Ticket, TicketStatus, TicketStep, User
from onboarding.services import AGENTS, get_ticket, require_role

# Step completions that mail someone by themselves: step -> (template, setting with the address).
AUTOMATIC_STEP_MAIL: dict[str, tuple[str, str]] = {
    StepKey.DEV_HANDOFF: ("dev_handoff", "DEV_TEAM_ADDRESS"),
    StepKey.BILLING: ("billing_request", "FINANCE_ADDRESS"),
}

# Who a template goes to by default. The integrator's address is known by the inbound side
# (the Boavista mail that opened the ticket); it registers a resolver with set_recipient_resolver.
RecipientResolver = Callable[[Session, Ticket], list[str]]


def _config_address(name: str) -> RecipientResolver:
    def resolve(_db: Session, _ticket: Ticket) -> list[str]:
        value = current_app.config.get(name)
        return [value] if value else []

    return resolve


def _customer_contact(_db: Session, ticket: Ticket) -> list[str]:
    return [ticket.customer.contact_email] if ticket.customer.contact_email else []


_recipient_resolvers: dict[str, RecipientResolver] = {
    "dev_team": _config_address("DEV_TEAM_ADDRESS"),
    "finance": _config_address("FINANCE_ADDRESS"),
    "customer": _customer_contact,
    "integrator": lambda _db, _ticket: [],
}


def set_recipient_resolver(audience: str, resolver: RecipientResolver) -> None:
    _recipient_resolvers[audience] = resolver


@dataclass(frozen=True)
class Draft:
    ticket_id: int
    template: str
    to: list[str]
    subject: str
    text: str
    html: str
    cc: list[str] = field(default_factory=list)


def _refuse_if_closed(ticket: Ticket) -> None:
    if ticket.status == TicketStatus.CLOSED:
        raise WorkflowError(
            "ticket_closed", f"O chamado {ticket.number} está encerrado e não aceita novos e-mails."
        )


def preview(
    ticket_id: int, template: str, session: Session | None = None, actor: User | None = None
) -> Draft:
    """The template rendered for the ticket, with its default recipients, for the agent to edit."""
    session = session if session is not None else db.session()
    spec = get_template(template)
    ticket = get_ticket(session, ticket_id)
    subject, text, html = render_template_mail(template, ticket, actor)
    to = _recipient_resolvers.get(spec.audience, lambda _d, _t: [])(session, ticket)
    return Draft(ticket_id=ticket.id, template=template, to=list(to), subject=subject, text=text, html=html)


def send_from_ticket(
    session: Session,
    actor: User | None,
    ticket_id: int,
    template: str,
    to: str | Iterable[str],
    subject: str,
    text: str,
    *,
    cc: str | Iterable[str] | None = None,
    in_reply_to: str | None = None,
) -> OutboundMail:
    """Queue a template mail as the agent edited it (flush only; the caller commits)."""
    require_role(actor, AGENTS, "enviar e-mail do chamado")
    get_template(template)
    ticket = get_ticket(session, ticket_id, lock=True)
    _refuse_if_closed(ticket)
    ensure_no_placeholders(subject, text)
    _subject, rendered_text, rendered_html = render_template_mail(template, ticket, actor)
    edited = _normalized(text) != _normalized(rendered_text)
    html = html_from_text(text, subject) if edited else rendered_html
    in_reply_to, references = _thread(session, in_reply_to)
    mail = outbound.queue_mail(
        session,
        ticket_id=ticket.id,
        to=to,
        cc=cc,
        subject=subject,
        text=text,
        html=html,
        template=template,
        in_reply_to=in_reply_to,
        references=references,
        automatic=False,
        actor=actor,
    )
    audit.record(
        session,
        actor,
        "mail.sent_from_ticket",
        mail,
        ticket_id=ticket.id,
        after={"template": template, "edited": edited, "message_id": mail.message_id},
    )
    session.flush()
    return mail


def send_reply(
    session: Session,
    actor: User | None,
    ticket_id: int,
    *,
    to: str | Iterable[str],
    subject: str,
    text: str,
    cc: str | Iterable[str] | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
) -> OutboundMail:
    """The reply box: free text from the agent, threaded under `in_reply_to` when given."""
    require_role(actor, AGENTS, "responder e-mail do chamado")
    ticket = get_ticket(session, ticket_id, lock=True)
    _refuse_if_closed(ticket)
    ensure_no_placeholders(subject, text)
    if not (text or "").strip():
        raise InvalidInput("empty_body", "O texto do e-mail está vazio.")
    if references is None:
        in_reply_to, references = _thread(session, in_reply_to)
    mail = outbound.queue_mail(
        session,
        ticket_id=ticket.id,
        to=to,
        cc=cc,
        subject=subject,
        text=text,
        html=html_from_text(text, subject),
        template="",
        in_reply_to=in_reply_to,
        references=references,
        automatic=False,
        actor=actor,
    )
    audit.record(
        session,
        actor,
        "mail.reply",
        mail,
        ticket_id=ticket.id,
        after={"message_id": mail.message_id, "in_reply_to": mail.in_reply_to},
    )
    session.flush()
    return mail


def _thread(session: Session, in_reply_to: str | None) -> tuple[str | None, str | None]:
    value = (in_reply_to or "").strip()
    if not value:
        return None, None
    if "\r" in value or "\n" in value:
        raise InvalidInput("invalid_in_reply_to", "Identificador de mensagem inválido.")
    if not value.startswith("<"):
        value = f"<{value}>"
    return outbound.thread_headers_for(session, value)


def _normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in (text or "").replace("\r\n", "\n").strip().splitlines())


def notify_step_completed(session: Session, ticket: Ticket, step: TicketStep, actor: User | None) -> None:
    """Step listener: the hand-off mail to the developers and the billing request to finance,
    queued in the transaction that completes the step (nothing when the address is unset)."""
    if not has_app_context():
        return
    automatic = AUTOMATIC_STEP_MAIL.get(step.key)
    if automatic is None:
        return
    template, setting = automatic
    address = (current_app.config.get(setting) or "").strip()
    if not address:
        return
    subject, text, html = render_template_mail(template, ticket, actor, notes=step.notes or "")
    outbound.queue_mail(
        session,
        ticket_id=ticket.id,
        to=[address],
        subject=subject,
        text=text,
        html=html,
        template=template,
        automatic=True,
        actor=actor,
    )
