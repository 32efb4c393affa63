"""STAND-IN for branch `outbound`'s mail_ingest/tokens.py (lead: take theirs at merge, drop this).

Same names and the same algorithm as theirs, so threading by our signed Message-IDs can be tested
here: `<ex.{ticket_id}.{nonce}.{hmac10}@domain>`, HMAC keyed by SECRET_KEY.
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
    r"^ex\.(?P<ticket>[1-9][0-9]{0,17})\.(?P<nonce>[0-9a-f]{8,64})\.(?P<sig>[0-9a-f]{"
    + str(SIGNATURE_LENGTH)
    + r"})@(?P<domain>[^@<>\s]+)$"
)


def _signature(ticket_id: int, nonce: str, secret: str) -> str:
    key = hashlib.sha256(_KEY_CONTEXT + secret.encode()).digest()
    mac = hmac.new(key, f"{PREFIX}.{ticket_id}.{nonce}".encode(), hashlib.sha256)
    return mac.hexdigest()[:SIGNATURE_LENGTH]


def make_message_id(ticket_id: int | None, secret: str, domain: str = DEFAULT_DOMAIN) -> str:
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
    if not hmac.compare_digest(_signature(ticket_id, match["nonce"], secret), match["sig"]):
        return None
    return ticket_id
