"""Everything the pure core can tell about one raw message, as plain data, before any database.

`analyze()` parses and classifies; the result holds only strings, tuples and the extracted
customer data, so a batch of them can be prepared first and resolved against the database in a
few queries (see mail_ingest.lookup).
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import datetime

from mail_ingest.classify import (
    AUTO_REPLY,
    BOUNCE,
    auto_reply_kind,
    bounce_original_message_id,
    is_integrator_sender,
    ticket_numbers_in_subject,
)
from mail_ingest.extract import CustomerData, extract_customer, looks_like_onboarding
from mail_ingest.parse import ParsedMessage, ParseError, parse_message

MAX_THREAD_IDS = 50
INTEGRATOR_NAMES = ("boavista",)
_DSN_RECIPIENT = re.compile(
    r"^(?:final|original)-recipient:\s*rfc822;\s*<?([^\s<>]+@[^\s<>]+?)>?\s*$", re.I | re.M
)


@dataclass(frozen=True)
class Analysis:
    error: str | None = None  # the ParseError reason: the message is malformed
    from_address: str = ""
    from_name: str = ""
    subject: str = ""
    in_reply_to: str | None = None
    sent_at: datetime | None = None
    automatic: str | None = None  # "auto_reply" or "bounce": never answered, never a new ticket
    loop: bool = False  # sent from one of our own addresses
    integrator: bool = False  # the From address is in INTEGRATOR_DOMAINS
    claims_integrator: bool = False  # the display name says it is the integrator
    onboarding: bool = False  # reads as an integration request
    thread_ids: tuple[str, ...] = ()  # what it answers, most specific first
    subject_numbers: tuple[str, ...] = ()  # ticket numbers in its subject
    bounced_numbers: tuple[str, ...] = ()  # ticket numbers of the mail of ours that bounced
    bounced_recipients: tuple[str, ...] = ()  # whom that mail was addressed to
    customer: CustomerData | None = None  # for an integrator's onboarding request

    @property
    def malformed(self) -> bool:
        return self.error is not None


def analyze(raw: bytes, integrator_domains: tuple[str, ...], own_addresses: frozenset[str]) -> Analysis:
    try:
        parsed = parse_message(raw)
    except ParseError as error:
        return Analysis(error=error.reason)
    sender = (parsed.from_address or "").lower()
    automatic = auto_reply_kind(parsed)
    integrator = is_integrator_sender(parsed, integrator_domains)
    notice = automatic == AUTO_REPLY and integrator and _integrator_notice(parsed)
    onboarding = (automatic is None or notice) and looks_like_onboarding(parsed)
    if notice and onboarding:
        # Integrator systems mark their own notices auto-generated; they still open tickets
        # (and, like every inbound mail, are never answered automatically).
        automatic = None
    loop = bool(sender) and sender in own_addresses
    if automatic is None and loop:
        automatic = AUTO_REPLY
    return Analysis(
        from_address=sender[:320],
        from_name=parsed.from_name[:300],
        subject=parsed.subject[:1000],
        in_reply_to=parsed.in_reply_to[:1000] if parsed.in_reply_to else None,
        sent_at=parsed.date,
        automatic=automatic,
        loop=loop,
        integrator=integrator,
        claims_integrator=any(word in parsed.from_name.lower() for word in INTEGRATOR_NAMES),
        onboarding=onboarding,
        thread_ids=_thread_ids(parsed, bounce=automatic == BOUNCE),
        subject_numbers=tuple(ticket_numbers_in_subject(parsed.subject)),
        bounced_numbers=_bounced_numbers(parsed, own_addresses) if automatic == BOUNCE else (),
        bounced_recipients=_bounced_recipients(parsed) if automatic == BOUNCE else (),
        customer=extract_customer(parsed) if onboarding and integrator and automatic is None else None,
    )


def _thread_ids(parsed: ParsedMessage, *, bounce: bool) -> tuple[str, ...]:
    """Message-IDs this mail answers: In-Reply-To, then References newest first; for a bounce,
    the Message-ID of the message that bounced comes first."""
    ids: list[str] = []
    if bounce:
        original = bounce_original_message_id(parsed)
        if original:
            ids.append(original)
        ids.extend(inner.in_reply_to for inner in parsed.forwarded if inner.in_reply_to)
    if parsed.in_reply_to:
        ids.append(parsed.in_reply_to)
    ids.extend(reversed(parsed.references))
    return tuple(dict.fromkeys(ids))[:MAX_THREAD_IDS]


def _bounced_numbers(parsed: ParsedMessage, own_addresses: frozenset[str]) -> tuple[str, ...]:
    """Ticket numbers in the subject of the bounced message, when we were its sender."""
    originals = [
        (email.utils.parseaddr(headers.get("from", ""))[1].lower(), headers.get("subject", ""))
        for headers in parsed.attached_headers
    ]
    originals.extend(((inner.from_address or "").lower(), inner.subject) for inner in parsed.forwarded)
    numbers: list[str] = []
    for sender, subject in originals:
        if sender in own_addresses:
            numbers.extend(ticket_numbers_in_subject(subject))
    return tuple(dict.fromkeys(numbers))


def _bounced_recipients(parsed: ParsedMessage) -> tuple[str, ...]:
    """The addresses the bounced mail was for: its copied To/Cc and the DSN's recipients."""
    found: list[str] = []
    for headers in parsed.attached_headers:
        values = [headers.get("to", ""), headers.get("cc", "")]
        found.extend(address.lower() for _, address in email.utils.getaddresses(values) if address)
    for inner in parsed.forwarded:
        found.extend((*inner.to, *inner.cc))
    found.extend(m.lower() for m in _DSN_RECIPIENT.findall(parsed.delivery_status or ""))
    return tuple(dict.fromkeys(found))


def _integrator_notice(parsed: ParsedMessage) -> bool:
    """A system-generated notice (RFC 3834 auto-generated), not an answer to anything."""
    auto = parsed.headers.get("auto-submitted", "").split(";", 1)[0].strip().lower()
    return (
        auto == "auto-generated"
        and "x-autoreply" not in parsed.headers
        and "x-autorespond" not in parsed.headers
        and not parsed.in_reply_to
    )
