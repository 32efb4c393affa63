"""The SMTP conversation, with the outcome of each failure classified.

A failure is *definite* when the server surely did not take the message (refused connection,
refusal before or at DATA, a refusal reply after the message): it may be retried. It is
*uncertain* when the connection died after the message body started to go out: the server may
have delivered it, so the caller must not resend it blindly.
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from onboarding.errors import InvalidInput

SECURITY_MODES = ("ssl", "starttls", "none")
DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0


def extra_setting(config: Mapping[str, Any], name: str) -> Any:
    """A setting beyond SPEC section 2 (not loaded by onboarding.config): app config, then env."""
    value = config.get(name)
    return value if value not in (None, "") else (os.environ.get(name) or None)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str
    user: str | None
    password: str | None
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    ca_file: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmtpSettings | None:
        """None when SMTP_HOST is unset: then nothing is sent and the outbox is kept."""
        host = (config.get("SMTP_HOST") or "").strip()
        if not host:
            return None
        security = str(config.get("SMTP_SECURITY") or "starttls").strip().lower()
        if security not in SECURITY_MODES:
            raise InvalidInput(
                "invalid_smtp_security",
                f"SMTP_SECURITY inválido: {security!r}. Use ssl, starttls ou none.",
            )
        port = config.get("SMTP_PORT") or DEFAULT_PORTS[security]
        return cls(
            host=host,
            port=int(port),
            security=security,
            user=config.get("SMTP_USER") or None,
            password=config.get("SMTP_PASSWORD") or None,
            connect_timeout=float(extra_setting(config, "SMTP_CONNECT_TIMEOUT") or CONNECT_TIMEOUT),
            read_timeout=float(extra_setting(config, "SMTP_READ_TIMEOUT") or READ_TIMEOUT),
            ca_file=extra_setting(config, "SMTP_CA_FILE"),
        )

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)


class SmtpFailure(Exception):
    """The server surely did not take the message."""

    def __init__(self, message: str, *, permanent: bool = False, connection: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent  # a 5xx refusal of this message: retrying will not help
        self.connection = connection  # the server is unreachable or broke off: stop this pass


class SmtpUncertain(Exception):
    """The connection died after the message body was sent: it may have been delivered."""


class ClaimLost(Exception):
    """The outbox row is no longer ours (another worker or an agent took it): do not send."""


@dataclass(frozen=True)
class SendResult:
    reply: str
    refused: dict[str, str] = field(default_factory=dict)


def _reply_text(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}".strip()


def _refusal(stage: str, code: int, message: bytes | str) -> SmtpFailure:
    return SmtpFailure(f"{stage}: {_reply_text(code, message)}", permanent=500 <= code < 600)


class SmtpConnection:
    """One connection reused across the messages of a pass; reconnects after any failure."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._conn: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            conn.close()

    def _abort(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def connect(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        s = self.settings
        local_name = socket.gethostname() or "localhost"
        conn: smtplib.SMTP | None = None
        try:
            if s.security == "ssl":
                conn = smtplib.SMTP_SSL(
                    s.host,
                    s.port,
                    local_hostname=local_name,
                    timeout=s.connect_timeout,
                    context=s.ssl_context(),
                )
            else:
                conn = smtplib.SMTP(s.host, s.port, local_hostname=local_name, timeout=s.connect_timeout)
            if conn.sock is not None:
                conn.sock.settimeout(s.read_timeout)
            conn.ehlo()
            if s.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise SmtpFailure(
                        "the server does not offer STARTTLS (SMTP_SECURITY=starttls)", connection=True
                    )
                conn.starttls(context=s.ssl_context())
                conn.ehlo()
            if s.user:
                conn.login(s.user, s.password or "")
        except SmtpFailure:
            if conn is not None:
                conn.close()
            raise
        except smtplib.SMTPAuthenticationError as error:
            if conn is not None:
                conn.close()
            raise SmtpFailure(
                f"authentication refused: {_reply_text(error.smtp_code, error.smtp_error)}", connection=True
            ) from error
        except (OSError, smtplib.SMTPException) as error:
            if conn is not None:
                conn.close()
            raise SmtpFailure(
                f"cannot reach {s.host}:{s.port} ({s.security}): {error}", connection=True
            ) from error
        self._conn = conn
        return conn

    def send(
        self, payload: bytes, sender: str, recipients: list[str], before_data: Callable[[], bool]
    ) -> SendResult:
        """Send one message. `before_data` runs after RCPT, just before DATA; False aborts."""
        conn = self.connect()
        body_started = False
        try:
            code, message = conn.mail(sender)
            if code != 250:
                raise _refusal("MAIL FROM refused", code, message)
            refused: dict[str, str] = {}
            for recipient in recipients:
                code, message = conn.rcpt(recipient)
                if code not in (250, 251):
                    refused[recipient] = _reply_text(code, message)
            if len(refused) == len(recipients):
                codes = [int(r.split(" ", 1)[0]) for r in refused.values()]
                detail = "; ".join(f"{k}: {v}" for k, v in refused.items())
                raise SmtpFailure(f"every recipient refused: {detail}", permanent=min(codes) >= 500)
            if not before_data():
                raise ClaimLost("outbox row no longer claimed by this sender")
            code, message = conn.docmd("DATA")
            if code != 354:
                raise _refusal("DATA refused", code, message)
            body_started = True
            conn.send(_dot_stuffed(payload))
            code, message = conn.getreply()
        except (SmtpFailure, ClaimLost):
            self._reset()
            raise
        except (OSError, smtplib.SMTPException) as error:
            self._abort()
            if body_started:
                raise SmtpUncertain(f"connection lost after the message was sent: {error!r}") from error
            raise SmtpFailure(f"connection lost before DATA: {error!r}", connection=True) from error
        if code != 250:
            self._reset()
            raise _refusal("message refused after DATA", code, message)
        return SendResult(reply=_reply_text(code, message), refused=refused)

    def _reset(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rset()
        except (OSError, smtplib.SMTPException):
            self._abort()


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _dot_stuffed(payload: bytes) -> bytes:
    data = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", payload)
    data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"
