"""Addresses and MIME: what an outbox row becomes on the wire."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, parseaddr

from markupsafe import Markup, escape

from onboarding.errors import InvalidInput

SMTP_POLICY = policy.SMTP  # CRLF, RFC 2047 for non-ASCII headers (no SMTPUTF8 needed)
_ADDR_SPEC = re.compile(
    r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)


def _no_line_breaks(value: str) -> bool:
    return "\r" not in value and "\n" not in value and "\x00" not in value


def normalize_addresses(value: str | Iterable[str] | None, field: str) -> list[str]:
    """`Name <a@b>` / `a@b` items (a string may hold several, comma separated), checked.

    Returns formatted addresses, duplicates removed; InvalidInput names the bad one.
    """
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    result: list[str] = []
    seen: set[str] = set()
    for item in items:
        if not _no_line_breaks(str(item)):
            raise InvalidInput("invalid_address", f"Endereço inválido em {field}: quebra de linha.")
        for name, address in getaddresses([str(item)]):
            address = address.strip()
            if not address and not name:
                continue
            if not _ADDR_SPEC.match(address):
                shown = address or name
                raise InvalidInput("invalid_address", f"Endereço de e-mail inválido em {field}: {shown!r}.")
            key = address.lower()
            if key in seen:
                continue
            seen.add(key)
            result.append(formataddr((name.strip(), address)) if name.strip() else address)
    return result


def bare_address(formatted: str) -> str:
    return parseaddr(formatted)[1].lower()


def domain_of(formatted: str) -> str | None:
    address = bare_address(formatted)
    return address.rsplit("@", 1)[1] if "@" in address else None


def clean_subject(subject: str) -> str:
    return " ".join((subject or "").split())


@dataclass(frozen=True)
class MailParts:
    """What a message is made of; an outbox row snapshot (plain values)."""

    message_id: str
    mail_from: str
    reply_to: str
    to_addrs: list[str]
    cc_addrs: list[str]
    subject: str
    text_body: str
    html_body: str
    in_reply_to: str | None
    references: str
    automatic: bool

    @property
    def envelope_recipients(self) -> list[str]:
        return [bare_address(a) for a in [*self.to_addrs, *self.cc_addrs]]


def _address_header(value: str) -> Address:
    name, address = parseaddr(value)
    return Address(display_name=name, addr_spec=address)


def build_message(parts: MailParts, date: datetime) -> EmailMessage:
    """A multipart/alternative message (text first, then HTML) with our threading headers."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = _address_header(parts.mail_from)
    msg["To"] = [_address_header(a) for a in parts.to_addrs]
    if parts.cc_addrs:
        msg["Cc"] = [_address_header(a) for a in parts.cc_addrs]
    if parts.reply_to:
        msg["Reply-To"] = _address_header(parts.reply_to)
    msg["Subject"] = parts.subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = parts.message_id
    if parts.in_reply_to:
        msg["In-Reply-To"] = parts.in_reply_to
    if parts.references:
        msg["References"] = parts.references
    if parts.automatic:
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834
        msg["X-Auto-Response-Suppress"] = "All"  # asks Exchange not to answer with out-of-office
    msg.set_content(parts.text_body, cte="quoted-printable")
    if parts.html_body:
        msg.add_alternative(parts.html_body, subtype="html", cte="quoted-printable")
    return msg


_URL = re.compile(r"(https?://[^\s<>\"']+)")


def text_to_html_fragment(text: str) -> Markup:
    """The agent's plain text as safe HTML paragraphs: escaped, line breaks kept, links clickable."""
    paragraphs = [p for p in re.split(r"\n\s*\n", (text or "").strip()) if p.strip()]
    html_paragraphs = []
    for paragraph in paragraphs:
        lines = [_linkify(str(escape(line))) for line in paragraph.splitlines()]
        html_paragraphs.append("<p>" + "<br>\n".join(lines) + "</p>")
    return Markup("\n".join(html_paragraphs))


def _linkify(escaped_line: str) -> str:
    return _URL.sub(lambda m: f'<a href="{m.group(1)}">{m.group(1)}</a>', escaped_line)
