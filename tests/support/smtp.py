"""A private SMTP server (aiosmtpd) on loopback that keeps every message it receives.

It can restart on the same port, so an application configured with that port sees the server go
down and come back, and it can be told to refuse messages for a while (`fail_with`).
"""

from __future__ import annotations

import email
import email.policy
import logging
import shutil
import tempfile
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.services import free_port, port_open, wait_until
from tests.support.tls import CertPair, make_self_signed

Security = Literal["none", "starttls", "ssl"]

# aiosmtpd warns on every AUTH about its own deprecated attribute and about AUTH without TLS,
# which the plain test variant does on purpose.
logging.getLogger("mail.log").setLevel(logging.ERROR)
AUTH_WITHOUT_TLS_WARNING = "Requiring AUTH while not requiring TLS"
warnings.filterwarnings("ignore", message=AUTH_WITHOUT_TLS_WARNING, category=UserWarning)


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    authenticated_as: str | None
    over_tls: bool


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self._owner._failure
        if failure is not None:
            return failure
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self._owner._record(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=raw,
                message=message,
                authenticated_as=login.decode() if isinstance(login, bytes) else login,
                over_tls=session.ssl is not None or _transport_is_tls(server),
            )
        )
        return "250 Message accepted for delivery"


def _transport_is_tls(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _Authenticator:
    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = users

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if self._users.get(login) == password:
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)


class SmtpServer:
    """`security`: "none" (plain), "starttls" (offered; `require_tls` makes it mandatory) or
    "ssl" (implicit TLS). `users` (login -> password) turns on AUTH PLAIN/LOGIN, required."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        security: Security = "none",
        users: Mapping[str, str] | None = None,
        require_tls: bool = False,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.security: Security = security
        self.users = dict(users or {})
        self.require_tls = require_tls
        self._certdir: Path | None = None
        self.cert: CertPair | None = None
        if security != "none":
            self._certdir = Path(tempfile.mkdtemp(prefix="smtp-test-"))
            self.cert = make_self_signed(self._certdir, "smtp")
        self._lock = threading.Lock()
        self._received: list[ReceivedMail] = []
        self._failure: str | None = None
        self._controller: Controller | None = None

    # -- life cycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {"server_hostname": "localhost"}
        if self.security == "starttls":
            assert self.cert is not None
            kwargs["tls_context"] = self.cert.server_context()
            kwargs["require_starttls"] = self.require_tls
        elif self.security == "ssl":
            assert self.cert is not None
            kwargs["ssl_context"] = self.cert.server_context()
        if self.users:
            kwargs["authenticator"] = _Authenticator(self.users)
            kwargs["auth_required"] = True
            # With STARTTLS, AUTH only after it. aiosmtpd does not see implicit TLS as TLS, so
            # the "ssl" variant (already encrypted) and the plain one allow AUTH as they are.
            kwargs["auth_require_tls"] = self.security == "starttls"
        controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
            wait_until(lambda: not port_open(self.host, self.port), 10, "the SMTP port to close")

    def restart(self) -> None:
        """Stop and start again on the same port; received messages are kept."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._certdir is not None:
            shutil.rmtree(self._certdir, ignore_errors=True)

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- behaviour --------------------------------------------------------------------------

    def fail_with(self, reply: str | None = "451 4.3.0 Temporary failure, try again later") -> None:
        """Answer DATA with `reply` (an SMTP reply line) until called with None."""
        self._failure = reply

    # -- what arrived -----------------------------------------------------------------------

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._received.append(mail)

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._received)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
        self._failure = None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Wait until at least `count` messages arrived; returns them all."""
        wait_until(lambda: len(self.messages) >= count, timeout, f"{count} SMTP message(s)")
        return self.messages

    def ssl_context(self) -> Any:
        if self.cert is None:
            raise RuntimeError("this SMTP server has no TLS")
        return self.cert.client_context()

    def env(self) -> dict[str, str]:
        """The application's SMTP_* settings (SPEC section 2) pointing at this server."""
        values = {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), "SMTP_SECURITY": self.security}
        if self.users:
            login, password = next(iter(self.users.items()))
            values |= {"SMTP_USER": login, "SMTP_PASSWORD": password}
        return values
