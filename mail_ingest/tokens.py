"""Signed reply tokens in our own Message-IDs.

Every mail we send carries `<ex.{ticket_id}.{random}.{hmac10}@domain>`. A reply quotes it in
In-Reply-To or References, so the ticket is found again without trusting the subject. The HMAC
(keyed by SECRET_KEY) proves we made the id: a forged or altered id yields None.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "ex"
DEFAULT_DOMAIN = "vetorsolucoes.com.br"
SIGNATURE_LENGTH = 10
_KEY_CONTEXT = b"e-extrato reply token v1\x00"
_TOKEN = re.compile(
    r"^ex\.(?P<ticket>[1-9][0-9]{0,17})\.(?P<nonce>[0-9a-f]{8,64})\."
    rf"(?P<sig>[0-9a-f]{{{SIGNATURE_LENGTH}}})@(?P<domain>[^@<>\s]+)$"
)
_ANGLE_ID = re.compile(r"<([^<>\s]+)>")


def _signature(ticket_id: int, nonce: str, secret: str) -> str:
    # A key of its own, derived from SECRET_KEY, so a token can never be confused with a session.
    key = hashlib.sha256(_KEY_CONTEXT + secret.encode()).digest()
    mac = hmac.new(key, f"{PREFIX}.{ticket_id}.{nonce}".encode(), hashlib.sha256)
    return mac.hexdigest()[:SIGNATURE_LENGTH]


def make_message_id(ticket_id: int | None, secret: str, domain: str = DEFAULT_DOMAIN) -> str:
    """A fresh Message-ID (with angle brackets); signed with the ticket when there is one."""
    nonce = secrets.token_hex(8)
    if ticket_id is None:
        return f"<{PREFIX}m.{nonce}@{domain}>"
    if ticket_id <= 0:
        raise ValueError("ticket ids are positive")
    return f"<{PREFIX}.{ticket_id}.{nonce}.{_signature(ticket_id, nonce, secret)}@{domain}>"


def ticket_id_from_message_id(message_id: str | None, secret: str) -> int | None:
    """The ticket id our own signed Message-ID names; None when it is not ours or was altered."""
    if not message_id:
        return None
    value = message_id.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    match = _TOKEN.match(value.lower())
    if match is None:
        return None
    ticket_id = int(match["ticket"])
    expected = _signature(ticket_id, match["nonce"], secret)
    if not hmac.compare_digest(expected, match["sig"]):
        return None
    return ticket_id


def message_ids_in(header_value: str | None) -> list[str]:
    """The `<id>` items of an In-Reply-To or References header, in order, with brackets."""
    if not header_value:
        return []
    found = [f"<{item}>" for item in _ANGLE_ID.findall(header_value)]
    bare = header_value.strip()
    if not found and bare and "@" in bare and not any(c in bare for c in " <>\r\n\t"):
        found = [f"<{bare}>"]  # a bare id without brackets, as some clients send
    return found


def ticket_id_from_headers(in_reply_to: str | None, references: str | None, secret: str) -> int | None:
    """The ticket of the newest valid token in In-Reply-To, then References (newest last)."""
    for message_id in message_ids_in(in_reply_to) + list(reversed(message_ids_in(references))):
        ticket_id = ticket_id_from_message_id(message_id, secret)
        if ticket_id is not None:
            return ticket_id
    return None
