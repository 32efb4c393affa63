"""The desk's mail templates (Jinja2, pt-BR): subject, plain text and HTML for each.

Files live in `templates/mail/messages/<name>.subject.txt|.txt|.html`. Text parts are rendered
without autoescaping, HTML parts with it. Parts the agent must complete before sending are
rendered with `placeholder()` and refused by `ensure_no_placeholders()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, has_request_context, request
from jinja2 import Environment, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session, object_session

from mail_ingest.compose import text_to_html_fragment
from mail_ingest.smtp_sender import extra_setting
from onboarding.errors import InvalidInput, NotFound
from onboarding.models import Ticket, User
from onboarding.services import format_cnpj

TEMPLATE_DIR = "mail/messages"
PLACEHOLDER_OPEN = "[[preencher:"
DEFAULT_BASE_URL = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class MailTemplate:
    name: str
    label: str
    audience: str  # dev_team | integrator | customer | finance


TEMPLATES: dict[str, MailTemplate] = {
    t.name: t
    for t in (
        MailTemplate("dev_handoff", "Encaminhamento ao desenvolvimento", "dev_team"),
        MailTemplate("integrator_problem", "Problemas na integração (Boavista)", "integrator"),
        MailTemplate("customer_operation_problem", "Problema de operação (cliente)", "customer"),
        MailTemplate("customer_orientation", "Orientação ao cliente", "customer"),
        MailTemplate("billing_request", "Solicitação de cobrança (financeiro)", "finance"),
    )
}

# Which template the agent is offered at each onboarding step.
STEP_TEMPLATES: dict[str, str] = {
    "dev_handoff": "dev_handoff",
    "orientation": "customer_orientation",
    "billing": "billing_request",
}

# Other packages may add template data (reconciliation: the divergences found at validation).
ContextProvider = Callable[[Session | None, Ticket, str], dict[str, Any]]
_context_providers: list[ContextProvider] = []


def add_context_provider(provider: ContextProvider) -> None:
    if provider not in _context_providers:
        _context_providers.append(provider)


def get_template(name: str) -> MailTemplate:
    template = TEMPLATES.get(name)
    if template is None:
        raise NotFound("unknown_mail_template", f"Modelo de e-mail desconhecido: {name}.")
    return template


def placeholder(hint: str) -> str:
    return f"{PLACEHOLDER_OPEN} {hint}]]"


def ensure_no_placeholders(*parts: str) -> None:
    if any(PLACEHOLDER_OPEN in (part or "") for part in parts):
        raise InvalidInput(
            "mail_has_placeholders",
            "Complete os trechos marcados com “[[preencher: …]]” antes de enviar o e-mail.",
        )


def desk_base_url() -> str:
    configured = extra_setting(current_app.config, "DESK_BASE_URL")
    if configured:
        return str(configured).rstrip("/")
    if has_request_context():
        return request.url_root.rstrip("/")
    return DEFAULT_BASE_URL


def ticket_url(ticket_id: int) -> str:
    return f"{desk_base_url()}/tickets/{ticket_id}"


def business_today() -> str:
    zone = ZoneInfo(current_app.config.get("TIMEZONE") or "America/Sao_Paulo")
    return datetime.now(zone).strftime("%d/%m/%Y")


def _environment() -> Environment:
    env = current_app.extensions.get("mail_jinja_env")
    if env is None:
        env = Environment(
            loader=current_app.jinja_env.loader,
            autoescape=select_autoescape(["html"], default_for_string=False, default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            undefined=StrictUndefined,
        )
        env.globals["placeholder"] = placeholder
        current_app.extensions["mail_jinja_env"] = env
    return env


def mail_context(name: str, ticket: Ticket, actor: User | None = None, **extra: Any) -> dict[str, Any]:
    customer = ticket.customer
    config = current_app.config
    context: dict[str, Any] = {
        "template_name": name,
        "ticket": ticket,
        "ticket_number": ticket.number or f"#{ticket.id}",
        "ticket_url": ticket_url(ticket.id),
        "customer_name": customer.name or customer.trade_name or "cliente",
        "trade_name": customer.trade_name,
        "cnpj": format_cnpj(customer.cnpj) or "não informado",
        "establishment_codes": list(customer.establishment_codes),
        "contact_name": customer.contact_name,
        "contact_email": customer.contact_email,
        "contact_phone": customer.contact_phone,
        "lookback_days": int(config.get("RECON_LOOKBACK_DAYS") or 3),
        "support_address": config.get("SUPPORT_ADDRESS") or "",
        "sender_name": actor.display_name if actor is not None and actor.name else "",
        "today": business_today(),
        "problems": [],
        "notes": "",
    }
    session = object_session(ticket)
    for provider in _context_providers:
        context.update(provider(session, ticket, name) or {})
    context.update(extra)
    return context


def render_template_mail(
    name: str, ticket: Ticket, actor: User | None = None, **extra: Any
) -> tuple[str, str, str]:
    """(subject, text, html) of template `name` for `ticket`; `extra` adds or overrides data."""
    get_template(name)
    env = _environment()
    context = mail_context(name, ticket, actor, **extra)
    subject = " ".join(env.get_template(f"{TEMPLATE_DIR}/{name}.subject.txt").render(context).split())
    text = env.get_template(f"{TEMPLATE_DIR}/{name}.txt").render(context).strip() + "\n"
    html = env.get_template(f"{TEMPLATE_DIR}/{name}.html").render(context)
    return subject, text, html


def html_from_text(text: str, subject: str = "") -> str:
    """The HTML part for a text the agent wrote or edited: the same words, in the mail layout."""
    env = _environment()
    return env.get_template(f"{TEMPLATE_DIR}/_from_text.html").render(
        {"body": text_to_html_fragment(text), "subject": subject}
    )
