"""Stored messages -> analysed -> a ticket opened or joined, triage, or quarantine.

Runs inside the caller's transaction and only flushes. Never sends mail: nothing here can answer
an auto-reply or a bounce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from babel.numbers import format_decimal
from sqlalchemy import update
from sqlalchemy.orm import Session

from mail_ingest.analysis import Analysis, analyze
from mail_ingest.classify import BOUNCE
from mail_ingest.extract import CustomerData
from mail_ingest.inbound_models import InboundKind, InboundMessage, InboundOutcome, InboundStatus
from mail_ingest.lookup import Lookup
from onboarding import audit, services
from onboarding.config import integrator_domains
from onboarding.db import utcnow
from onboarding.models import Ticket

MAX_EVIDENCE = 300  # TicketStep.evidence


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


def analyze_raw(raw: bytes, settings: IngestSettings) -> Analysis:
    return analyze(raw, settings.integrator_domains, settings.own_addresses)


def process_batch(
    db: Session, entries: Sequence[tuple[InboundMessage, Analysis]], settings: IngestSettings
) -> None:
    """Decide each message in order (a later one sees what an earlier one opened or joined)."""
    lookup = Lookup(db, settings.mailbox, settings.secret, settings.integrator_domains)
    lookup.prepare(analysis for _, analysis in entries)
    links: list[InboundMessage] = []
    for message, analysis in entries:
        decide(db, message, analysis, settings, lookup, links)
        db.add(message)  # decided: inserted once, in its final state
    if links:
        db.flush()
        now = utcnow()
        for message in links:
            audit.record(
                db,
                None,
                "mail.linked",
                message,
                ticket_id=message.ticket_id,
                after={
                    "message_id": message.message_id,
                    "outcome": message.outcome,
                    "from": message.from_address,
                },
            )
        db.execute(
            update(Ticket)
            .where(Ticket.id.in_({m.ticket_id for m in links}))
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )


def process_message(db: Session, message: InboundMessage, raw: bytes, settings: IngestSettings) -> None:
    process_batch(db, [(message, analyze_raw(raw, settings))], settings)


def decide(
    db: Session,
    message: InboundMessage,
    analysis: Analysis,
    settings: IngestSettings,
    lookup: Lookup,
    links: list[InboundMessage],
) -> None:
    if analysis.malformed:
        quarantine(message, InboundKind.MALFORMED, f"Mensagem malformada: {analysis.error}")
        return
    describe(message, analysis)
    if message.headers_only:
        quarantine(
            message,
            InboundKind.OVERSIZE,
            f"Mensagem de {_megabytes(message.size)} excede o limite de {_megabytes(settings.max_bytes)} "
            "(MAIL_MAX_BYTES); não foi baixada, só o cabeçalho foi guardado.",
        )
        return

    def join(ticket_id: int, outcome: InboundOutcome, kind: InboundKind) -> None:
        message.ticket_id = ticket_id
        _finish(message, outcome, kind)
        lookup.remember(message.message_id, ticket_id, analysis.from_address)
        links.append(message)

    if analysis.automatic is not None:
        bounce = analysis.automatic == BOUNCE
        kind = InboundKind.BOUNCE if bounce else InboundKind.AUTO_REPLY
        ticket_id = lookup.ticket_for_thread(analysis)
        if ticket_id is None:
            ticket_id = (
                lookup.ticket_for_bounced_subject(analysis)
                if bounce
                else lookup.ticket_for_subject(analysis)[0]
            )
        if ticket_id is not None:
            join(ticket_id, InboundOutcome.BOUNCE if bounce else InboundOutcome.AUTO_REPLY, kind)
        else:
            what = "Aviso de falha de entrega" if bounce else "Resposta automática"
            reason = f"{what} sem chamado relacionado."
            if analysis.loop:
                reason = "Mensagem enviada pelo próprio endereço de atendimento, sem chamado relacionado."
            triage(message, kind, reason)
        return

    ticket_id = lookup.ticket_for_thread(analysis)
    if ticket_id is not None:
        join(ticket_id, InboundOutcome.REPLY, InboundKind.REPLY)
        return
    ticket_id, subject_reason = lookup.ticket_for_subject(analysis)
    if ticket_id is not None:
        join(ticket_id, InboundOutcome.REPLY, InboundKind.REPLY)
        return

    if analysis.onboarding and analysis.integrator and analysis.customer is not None:
        existing = lookup.open_ticket_for_cnpj(analysis.customer.cnpj)
        if existing is not None:
            join(existing, InboundOutcome.JOINED, InboundKind.ONBOARDING)
        else:
            open_from_request(db, message, analysis.customer, analysis.subject, lookup)
        return
    if analysis.onboarding:
        triage(message, InboundKind.ONBOARDING, _stranger_reason(analysis, settings))
    elif subject_reason:
        triage(message, InboundKind.OTHER, subject_reason)
    elif analysis.integrator:
        triage(message, InboundKind.OTHER, "Mensagem do integrador sem dados de integração reconhecidos.")
    elif analysis.claims_integrator:
        triage(message, InboundKind.OTHER, _stranger_reason(analysis, settings))
    else:
        triage(
            message,
            InboundKind.OTHER,
            "Mensagem não reconhecida como solicitação de integração nem como resposta a um chamado.",
        )


def open_from_request(
    db: Session, message: InboundMessage, data: CustomerData, subject: str, lookup: Lookup
) -> Ticket:
    """An integrator's onboarding request: a ticket with step `contract` done on its evidence."""
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
        subject=subject[:300],
        flags=extra_flags(data),
        strict=False,
        contract_evidence=evidence,
    )
    message.ticket_id = ticket.id
    _finish(message, InboundOutcome.TICKET, InboundKind.ONBOARDING)
    lookup.remember_ticket(ticket, data.cnpj)
    lookup.remember(message.message_id, ticket.id, message.from_address)
    return ticket


def extra_flags(data: CustomerData) -> list[str]:
    """Flags for what open_ticket does not check itself (it flags CNPJ and establishment codes)."""
    flags = []
    if "company_name" in data.missing:
        flags.append("missing_company_name")
    if "contact" in data.missing:
        flags.append("missing_contact")
    return flags


def describe(message: InboundMessage, analysis: Analysis) -> None:
    message.from_address = analysis.from_address
    message.from_name = analysis.from_name
    message.subject = analysis.subject
    message.in_reply_to = analysis.in_reply_to
    message.sent_at = analysis.sent_at


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


def _stranger_reason(analysis: Analysis, settings: IngestSettings) -> str:
    address = analysis.from_address or "(sem endereço)"
    domains = ", ".join(settings.integrator_domains) or "(nenhum configurado)"
    if analysis.claims_integrator:
        return (
            f"O nome do remetente ({analysis.from_name}) se apresenta como integrador, mas o endereço "
            f"{address} não é de um domínio do integrador ({domains})."
        )
    return (
        f"Parece uma solicitação de integração, mas o remetente {address} não é de um domínio "
        f"do integrador ({domains})."
    )


def _megabytes(size: int) -> str:
    return f"{format_decimal(size / (1024 * 1024), format='#,##0.0', locale='pt_BR')} MB"
