"""Which ticket a mail belongs to, for a whole batch in a few queries.

A mail joins a ticket through its thread (In-Reply-To/References naming a mail we stored or sent,
or one of our signed Message-IDs), or through a ticket number in its subject, trusted only from
a known participant of that ticket (anyone can type a number into a subject). An integrator's
request joins the open ticket of the same CNPJ. What the batch itself adds (a ticket opened by an
earlier mail of the batch, a mail that joined one) is remembered, so later mails see it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from types import ModuleType

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mail_ingest.analysis import Analysis
from mail_ingest.inbound_models import InboundMessage
from mail_ingest.tokens import ticket_id_from_message_id
from onboarding.models import Customer, Ticket, TicketStatus, User


def outbound_models() -> ModuleType | None:
    """The outbox models when the outbound part is installed (merged separately)."""
    try:
        return importlib.import_module("mail_ingest.outbound_models")
    except ImportError:
        return None


def in_domains(address: str, domains: Iterable[str]) -> bool:
    domain = address.rpartition("@")[2].lower()
    return bool(domain) and any(domain == d or domain.endswith("." + d) for d in domains)


class Lookup:
    def __init__(self, db: Session, mailbox: str, secret: str, integrator_domains: Sequence[str]) -> None:
        self.db = db
        self.mailbox = mailbox
        self.secret = secret
        self.domains = tuple(integrator_domains)
        self.by_message_id: dict[str, int] = {}
        self.by_number: dict[str, int] = {}
        self.open_by_cnpj: dict[str, int] = {}
        self._participants: dict[int, set[str]] = {}
        self._integrator_on: dict[int, bool] = {}

    # -- prefetch ---------------------------------------------------------------------------

    def prepare(self, analyses: Iterable[Analysis]) -> None:
        """Load what the database knows about the ids, numbers and CNPJs these mails mention."""
        analyses = [a for a in analyses if not a.malformed]
        ids = list({i for a in analyses for i in a.thread_ids if i not in self.by_message_id})
        numbers = list({n for a in analyses for n in (*a.subject_numbers, *a.bounced_numbers)})
        cnpjs = list({a.customer.cnpj for a in analyses if a.customer is not None and a.customer.cnpj})
        db = self.db
        if ids:
            found: dict[str, int] = {}
            for message_id in ids:
                signed = ticket_id_from_message_id(message_id, self.secret)
                if signed is not None:
                    found[message_id] = signed
            queries = [
                select(InboundMessage.message_id, InboundMessage.ticket_id).where(
                    InboundMessage.mailbox == self.mailbox,
                    InboundMessage.message_id.in_(ids),
                    InboundMessage.ticket_id.is_not(None),
                ),
            ]
            outbound = outbound_models()
            if outbound is not None:
                sent = outbound.OutboundMail
                queries.append(
                    select(sent.message_id, sent.ticket_id).where(
                        sent.message_id.in_(ids), sent.ticket_id.is_not(None)
                    )
                )
            for query in queries:
                for message_id, ticket_id in db.execute(query).all():
                    found.setdefault(message_id, int(ticket_id))
            existing = set(db.scalars(select(Ticket.id).where(Ticket.id.in_(set(found.values())))))
            self.by_message_id.update({k: v for k, v in found.items() if v in existing})
        if numbers:
            self.by_number.update(
                dict(db.execute(select(Ticket.number, Ticket.id).where(Ticket.number.in_(numbers))).all())
            )
        if cnpjs:
            rows = db.execute(
                select(Customer.cnpj, Ticket.id)
                .join(Ticket, Ticket.customer_id == Customer.id)
                .where(Customer.cnpj.in_(cnpjs), Ticket.status != TicketStatus.CLOSED)
                .order_by(Ticket.id)
            ).all()
            for cnpj, ticket_id in rows:
                self.open_by_cnpj.setdefault(cnpj, ticket_id)

    # -- questions --------------------------------------------------------------------------

    def ticket_for_thread(self, analysis: Analysis) -> int | None:
        for message_id in analysis.thread_ids:
            ticket_id = self.by_message_id.get(message_id)
            if ticket_id is not None:
                return ticket_id
        return None

    def ticket_for_bounced_subject(self, analysis: Analysis) -> int | None:
        """The ticket named in the subject of a mail of ours that bounced, when it was addressed
        to someone who takes part in that ticket (we mailed them from it, or they wrote)."""
        for number in analysis.bounced_numbers:
            ticket_id = self.by_number.get(number)
            if ticket_id is not None and any(
                self.is_participant(ticket_id, address) for address in analysis.bounced_recipients
            ):
                return ticket_id
        return None

    def ticket_for_subject(self, analysis: Analysis) -> tuple[int | None, str]:
        """(ticket, "") when the subject names a ticket the sender took part in; (None, pt-BR
        reason) when it names one but the sender is a stranger; (None, "") otherwise."""
        sender = analysis.from_address
        for number in analysis.subject_numbers:
            ticket_id = self.by_number.get(number)
            if ticket_id is None:
                continue
            if sender and self.is_participant(ticket_id, sender):
                return ticket_id, ""
            return None, (
                f"O assunto cita o chamado {number}, mas o remetente {sender or '(sem endereço)'} "
                "não participa dele."
            )
        return None, ""

    def is_participant(self, ticket_id: int, address: str) -> bool:
        """Its contact, who wrote to it or was written to from it, a desk user; an integrator
        address when the integrator's mail is on the ticket."""
        address = address.lower()
        if address in self._people(ticket_id):
            return True
        return in_domains(address, self.domains) and self._integrator_on_ticket(ticket_id)

    def _people(self, ticket_id: int) -> set[str]:
        people = self._participants.get(ticket_id)
        if people is not None:
            return people
        db = self.db
        people = set()
        contact = db.scalar(
            select(Customer.contact_email)
            .join(Ticket, Ticket.customer_id == Customer.id)
            .where(Ticket.id == ticket_id)
        )
        if contact:
            people.add(contact.strip().lower())
        people.update(
            db.scalars(
                select(func.lower(InboundMessage.from_address))
                .where(InboundMessage.ticket_id == ticket_id, InboundMessage.from_address != "")
                .distinct()
            )
        )
        outbound = outbound_models()
        if outbound is not None:
            recipient, sent = outbound.OutboundRecipient, outbound.OutboundMail
            people.update(
                a.lower()
                for a in db.scalars(
                    select(recipient.address)
                    .join(sent, recipient.mail_id == sent.id)
                    .where(sent.ticket_id == ticket_id)
                )
            )
        people.update(e.lower() for e in db.scalars(select(User.email).where(User.active.is_(True))))
        self._participants[ticket_id] = people
        return people

    def _integrator_on_ticket(self, ticket_id: int) -> bool:
        if ticket_id not in self._integrator_on:
            self._integrator_on[ticket_id] = any(in_domains(a, self.domains) for a in self._people(ticket_id))
        return self._integrator_on[ticket_id]

    def open_ticket_for_cnpj(self, cnpj: str | None) -> int | None:
        return self.open_by_cnpj.get(cnpj) if cnpj else None

    # -- what the batch adds ----------------------------------------------------------------

    def remember(self, message_id: str, ticket_id: int, sender: str) -> None:
        """A mail of this batch is now on `ticket_id`: later replies to it and its sender count."""
        self.by_message_id.setdefault(message_id, ticket_id)
        if sender and ticket_id in self._participants:
            self._participants[ticket_id].add(sender.lower())
        if sender and in_domains(sender, self.domains):
            self._integrator_on[ticket_id] = True

    def remember_ticket(self, ticket: Ticket, cnpj: str | None) -> None:
        """A ticket opened by a mail of this batch (its participants are read when asked)."""
        if ticket.number:
            self.by_number[ticket.number] = ticket.id
        if cnpj:
            self.open_by_cnpj.setdefault(cnpj, ticket.id)
