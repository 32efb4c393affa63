"""Which ticket a mail belongs to: its thread headers, our signed Message-IDs, or the subject.

The subject's ticket number is trusted only from a known participant of that ticket, since
anyone can type a number into a subject.
"""

from __future__ import annotations

import email.utils
import importlib
from collections.abc import Iterable, Sequence
from types import ModuleType

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mail_ingest.classify import bounce_original_message_id, ticket_numbers_in_subject
from mail_ingest.inbound_models import InboundMessage
from mail_ingest.parse import ParsedMessage
from mail_ingest.tokens import ticket_id_from_message_id
from onboarding.models import Customer, Ticket, TicketStep, User

MAX_THREAD_IDS = 50


def _outbound() -> ModuleType | None:
    """The outbox models when the outbound part is installed (merged separately)."""
    try:
        return importlib.import_module("mail_ingest.outbound_models")
    except ImportError:
        return None


def thread_ids(parsed: ParsedMessage, *, bounce: bool = False) -> list[str]:
    """Message-IDs this mail answers, most specific first: In-Reply-To, then References newest first.

    For a bounce, the Message-ID of the message that bounced comes first.
    """
    ids: list[str] = []
    if bounce:
        original = bounce_original_message_id(parsed)
        if original:
            ids.append(original)
        for inner in parsed.forwarded:
            if inner.in_reply_to:
                ids.append(inner.in_reply_to)
    if parsed.in_reply_to:
        ids.append(parsed.in_reply_to)
    ids.extend(reversed(parsed.references))
    return list(dict.fromkeys(ids))[:MAX_THREAD_IDS]


def ticket_from_thread(db: Session, ids: Sequence[str], secret: str, mailbox: str) -> int | None:
    """The ticket of the first id that we can place: a signed id of ours, a stored mail, a sent mail."""
    if not ids:
        return None
    found: dict[str, int] = {}
    for message_id in ids:
        signed = ticket_id_from_message_id(message_id, secret)
        if signed is not None and message_id not in found:
            found[message_id] = signed
    rows = db.execute(
        select(InboundMessage.message_id, InboundMessage.ticket_id).where(
            InboundMessage.mailbox == mailbox,
            InboundMessage.message_id.in_(ids),
            InboundMessage.ticket_id.is_not(None),
        )
    ).all()
    for message_id, ticket_id in rows:
        found.setdefault(message_id, ticket_id)
    outbound = _outbound()
    if outbound is not None:
        sent = outbound.OutboundMail
        for message_id, ticket_id in db.execute(
            select(sent.message_id, sent.ticket_id).where(
                sent.message_id.in_(ids), sent.ticket_id.is_not(None)
            )
        ).all():
            found.setdefault(message_id, ticket_id)
    # The mail that opened a ticket is its contract evidence, even if its row moved on.
    for evidence, ticket_id in db.execute(
        select(TicketStep.evidence, TicketStep.ticket_id).where(TicketStep.evidence.in_(ids))
    ).all():
        found.setdefault(evidence, ticket_id)
    for message_id in ids:
        ticket_id = found.get(message_id)
        if ticket_id is not None and db.get(Ticket, ticket_id) is not None:
            return ticket_id
    return None


def participants(db: Session, ticket: Ticket, integrator_domains: Iterable[str]) -> set[str]:
    """Addresses that took part in the ticket: its contact, who wrote or was written to, the desk."""
    people: set[str] = set()
    customer = db.get(Customer, ticket.customer_id)
    if customer is not None and customer.contact_email:
        people.add(customer.contact_email.strip().lower())
    senders = db.scalars(
        select(func.lower(InboundMessage.from_address))
        .where(InboundMessage.ticket_id == ticket.id, InboundMessage.from_address != "")
        .distinct()
    ).all()
    people.update(senders)
    outbound = _outbound()
    if outbound is not None:
        recipient, sent = outbound.OutboundRecipient, outbound.OutboundMail
        people.update(
            a.lower()
            for a in db.scalars(
                select(recipient.address)
                .join(sent, recipient.mail_id == sent.id)
                .where(sent.ticket_id == ticket.id)
            )
        )
    people.update(e.lower() for e in db.scalars(select(User.email).where(User.active.is_(True))).all())
    return people


def ticket_from_subject(
    db: Session, parsed: ParsedMessage, integrator_domains: Sequence[str]
) -> tuple[int | None, str]:
    """(ticket id, "") when the subject names a ticket and the sender took part in it;
    (None, pt-BR reason) when it names one but the sender is a stranger; (None, "") otherwise."""
    numbers = ticket_numbers_in_subject(parsed.subject)
    sender = (parsed.from_address or "").lower()
    for number in numbers:
        ticket = db.scalars(select(Ticket).where(Ticket.number == number)).first()
        if ticket is None:
            continue
        if sender and (
            sender in participants(db, ticket, integrator_domains)
            or _integrator_on_ticket(db, ticket, sender, integrator_domains)
        ):
            return ticket.id, ""
        return None, (
            f"O assunto cita o chamado {number}, mas o remetente {sender or '(sem endereço)'} "
            "não participa dele."
        )
    return None, ""


def ticket_from_bounced_subject(
    db: Session, parsed: ParsedMessage, own_addresses: Iterable[str]
) -> int | None:
    """The ticket number in the subject of the message that bounced, when we had sent it."""
    own = {a.lower() for a in own_addresses}
    originals: list[tuple[str, str]] = []
    for headers in parsed.attached_headers:
        sender = email.utils.parseaddr(headers.get("from", ""))[1].lower()
        originals.append((sender, headers.get("subject", "")))
    originals.extend(((inner.from_address or "").lower(), inner.subject) for inner in parsed.forwarded)
    for sender, subject in originals:
        if sender not in own:
            continue
        for number in ticket_numbers_in_subject(subject):
            ticket_id = db.scalar(select(Ticket.id).where(Ticket.number == number))
            if ticket_id is not None:
                return ticket_id
    return None


def _integrator_on_ticket(db: Session, ticket: Ticket, sender: str, domains: Sequence[str]) -> bool:
    """An integrator address counts as a participant of a ticket the integrator's mail is on."""
    domain = sender.rpartition("@")[2]
    if not any(domain == d or domain.endswith("." + d) for d in domains):
        return False
    addresses = db.scalars(
        select(InboundMessage.from_address).where(InboundMessage.ticket_id == ticket.id)
    ).all()
    for address in addresses:
        other = (address or "").lower().rpartition("@")[2]
        if any(other == d or other.endswith("." + d) for d in domains):
            return True
    return False
