"""A stored message -> parsed -> classified -> a ticket opened or joined, triage, or quarantine.

Runs inside the caller's transaction and only flushes. Never sends mail: nothing here can answer
an auto-reply or a bounce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from mail_ingest.classify import AUTO_REPLY, BOUNCE, auto_reply_kind, is_integrator_sender
from mail_ingest.extract import CustomerData, extract_customer, looks_like_onboarding
from mail_ingest.inbound_models import InboundKind, InboundMessage, InboundOutcome, InboundStatus
from mail_ingest.parse import ParsedMessage, ParseError, parse_message
from mail_ingest.thread import (
    thread_ids,
    ticket_from_bounced_subject,
    ticket_from_subject,
    ticket_from_thread,
)
from onboarding import audit, services
from onboarding.config import integrator_domains
from onboarding.db import utcnow
from onboarding.models import StepKey, Ticket

MAX_EVIDENCE = 300  # TicketStep.evidence
INTEGRATOR_NAMES = ("boavista",)


@dataclass(frozen=True)
class IngestSettings:
    mailbox: str
    integrator_domains: tuple[str, ...]
    secret: str
    own_addresses: frozenset[str]
    max_bytes: int

    @classmethod
    def from_config(cls, config: Any) -> IngestSettings:
        own = {config.get("SUPPORT_ADDRESS") or "", config.get("MAIL_FROM") or ""}
        return cls(
            mailbox=(config.get("SUPPORT_ADDRESS") or "").strip().lower(),
            integrator_domains=tuple(integrator_domains(config)),
            secret=str(config["SECRET_KEY"]),
            own_addresses=frozenset(a.strip().lower() for a in own if a.strip()),
            max_bytes=int(config.get("MAIL_MAX_BYTES") or 26214400),
        )


def process_message(db: Session, message: InboundMessage, raw: bytes, settings: IngestSettings) -> None:
    """Decide what `message` is and act on it; status leaves `stored` for good."""
    try:
        parsed = parse_message(raw)
    except ParseError as error:
        quarantine(message, InboundKind.MALFORMED, f"Mensagem malformada: {error.reason}")
        return
    describe(message, parsed)
    if message.headers_only:
        limit = _megabytes(settings.max_bytes)
        quarantine(
            message,
            InboundKind.OVERSIZE,
            f"Mensagem de {_megabytes(message.size)} excede o limite de {limit} (MAIL_MAX_BYTES); "
            "não foi baixada, só o cabeçalho foi guardado.",
        )
        return
    route(db, message, parsed, settings)


def describe(message: InboundMessage, parsed: ParsedMessage) -> None:
    message.from_address = (parsed.from_address or "")[:320]
    message.from_name = parsed.from_name[:300]
    message.subject = parsed.subject[:1000]
    message.in_reply_to = parsed.in_reply_to[:1000] if parsed.in_reply_to else None
    message.sent_at = parsed.date


def route(db: Session, message: InboundMessage, parsed: ParsedMessage, settings: IngestSettings) -> None:
    sender = (parsed.from_address or "").lower()
    automatic = auto_reply_kind(parsed)
    integrator = is_integrator_sender(parsed, settings.integrator_domains)
    if (
        automatic == AUTO_REPLY
        and integrator
        and _integrator_notice(parsed)
        and looks_like_onboarding(parsed)
    ):
        # Integrator systems mark their own notices auto-generated; they still open tickets
        # (and, like every inbound mail, are never answered automatically).
        automatic = None
    if automatic is None and sender and sender in settings.own_addresses:
        automatic = AUTO_REPLY  # our own mail coming back: a loop, never to be answered

    if automatic is not None:
        kind = InboundKind.BOUNCE if automatic == BOUNCE else InboundKind.AUTO_REPLY
        ids = thread_ids(parsed, bounce=automatic == BOUNCE)
        ticket_id = ticket_from_thread(db, ids, settings.secret, settings.mailbox)
        if ticket_id is None and automatic == BOUNCE:
            ticket_id = ticket_from_bounced_subject(db, parsed, settings.own_addresses)
        elif ticket_id is None:
            ticket_id, _ = ticket_from_subject(db, parsed, settings.integrator_domains)
        if ticket_id is not None:
            outcome = InboundOutcome.BOUNCE if automatic == BOUNCE else InboundOutcome.AUTO_REPLY
            link(db, message, ticket_id, outcome, kind)
        else:
            what = "Aviso de falha de entrega" if automatic == BOUNCE else "Resposta automática"
            triage(message, kind, f"{what} sem chamado relacionado.")
        return

    ticket_id = ticket_from_thread(db, thread_ids(parsed), settings.secret, settings.mailbox)
    if ticket_id is not None:
        link(db, message, ticket_id, InboundOutcome.REPLY, InboundKind.REPLY)
        return
    ticket_id, subject_reason = ticket_from_subject(db, parsed, settings.integrator_domains)
    if ticket_id is not None:
        link(db, message, ticket_id, InboundOutcome.REPLY, InboundKind.REPLY)
        return

    onboarding = looks_like_onboarding(parsed)
    if onboarding and integrator:
        open_or_join(db, message, parsed)
        return
    if onboarding:
        triage(message, InboundKind.ONBOARDING, _stranger_reason(parsed, settings))
    elif subject_reason:
        triage(message, InboundKind.OTHER, subject_reason)
    elif integrator:
        triage(message, InboundKind.OTHER, "Mensagem do integrador sem dados de integração reconhecidos.")
    elif _claims_integrator(parsed):
        triage(message, InboundKind.OTHER, _stranger_reason(parsed, settings))
    else:
        triage(
            message,
            InboundKind.OTHER,
            "Mensagem não reconhecida como solicitação de integração nem como resposta a um chamado.",
        )


def open_or_join(db: Session, message: InboundMessage, parsed: ParsedMessage) -> None:
    """An integrator's onboarding request: join the customer's open ticket or open one."""
    data = extract_customer(parsed)
    if data.cnpj:
        existing = services.find_open_ticket_for_customer(db, data.cnpj)
        if existing is not None:
            link(db, message, existing.id, InboundOutcome.JOINED, InboundKind.ONBOARDING)
            return
    evidence = message.message_id if len(message.message_id) <= MAX_EVIDENCE else f"sha256:{message.sha256}"
    ticket = services.open_ticket(
        db,
        None,
        customer_name=data.company_name or "",
        trade_name=data.trade_name or "",
        cnpj=data.cnpj or data.invalid_cnpj,
        establishment_codes=list(data.establishment_codes),
        contact_email=data.contact_email or "",
        contact_name=data.contact_name or "",
        contact_phone=data.contact_phone or "",
        subject=(parsed.subject or "")[:300],
        flags=extra_flags(data),
        strict=False,
        contract_evidence=evidence,
    )
    message.ticket_id = ticket.id
    _finish(message, InboundOutcome.TICKET, InboundKind.ONBOARDING)


def extra_flags(data: CustomerData) -> list[str]:
    """Flags for what open_ticket does not check itself (it flags CNPJ and establishment codes)."""
    flags = []
    if "company_name" in data.missing:
        flags.append("missing_company_name")
    if "contact" in data.missing:
        flags.append("missing_contact")
    return flags


def link(
    db: Session, message: InboundMessage, ticket_id: int, outcome: InboundOutcome, kind: InboundKind
) -> None:
    message.ticket_id = ticket_id
    _finish(message, outcome, kind)
    db.flush()
    ticket = db.get(Ticket, ticket_id)
    audit.record(
        db,
        None,
        "mail.linked",
        message,
        ticket_id=ticket_id,
        after={"message_id": message.message_id, "outcome": str(outcome), "from": message.from_address},
    )
    if ticket is not None:
        ticket.updated_at = utcnow()


def triage(message: InboundMessage, kind: InboundKind, reason: str) -> None:
    message.reason = reason[:1000]
    _finish(message, InboundOutcome.TRIAGE, kind)


def quarantine(message: InboundMessage, kind: InboundKind, reason: str) -> None:
    message.status = InboundStatus.QUARANTINED
    message.outcome = None
    message.kind = kind
    message.reason = reason[:1000]
    message.processed_at = utcnow()


def _finish(message: InboundMessage, outcome: InboundOutcome, kind: InboundKind) -> None:
    message.status = InboundStatus.PROCESSED
    message.outcome = outcome
    message.kind = kind
    message.processed_at = utcnow()


def _integrator_notice(parsed: ParsedMessage) -> bool:
    """A system-generated notice (RFC 3834 auto-generated), not an answer to anything."""
    auto = parsed.headers.get("auto-submitted", "").split(";", 1)[0].strip().lower()
    return (
        auto == "auto-generated"
        and "x-autoreply" not in parsed.headers
        and "x-autorespond" not in parsed.headers
        and not parsed.in_reply_to
    )


def _claims_integrator(parsed: ParsedMessage) -> bool:
    name = parsed.from_name.lower()
    return any(word in name for word in INTEGRATOR_NAMES)


def _stranger_reason(parsed: ParsedMessage, settings: IngestSettings) -> str:
    address = parsed.from_address or "(sem endereço)"
    domains = ", ".join(settings.integrator_domains) or "(nenhum configurado)"
    if _claims_integrator(parsed):
        return (
            f"O nome do remetente ({parsed.from_name}) se apresenta como integrador, mas o endereço "
            f"{address} não é de um domínio do integrador ({domains})."
        )
    return (
        f"Parece uma solicitação de integração, mas o remetente {address} não é de um domínio "
        f"do integrador ({domains})."
    )


def _megabytes(size: int) -> str:
    value = f"{size / (1024 * 1024):.1f}".replace(".", ",")
    return f"{value} MB"


def contract_step_evidence(ticket: Ticket) -> str:
    return ticket.step(StepKey.CONTRACT).evidence
