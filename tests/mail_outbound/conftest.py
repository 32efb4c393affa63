"""Fixtures for the outbound mail tests: the app pointed at a real (aiosmtpd) SMTP server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask import Flask
from sqlalchemy.orm import Session as DbSession

from onboarding.models import Role, User
from tests.support.services import free_port
from tests.support.smtp import SmtpServer
from tests.web.helpers import CsrfClient

TEST_SECRET = "test-secret"
DEV_TEAM = "dev-team@vetorsolucoes.example"
FINANCE = "financeiro@vetorsolucoes.example"
MAIL_FROM = "Suporte Financeiro Vetor <suporte@vetorsolucoes.com.br>"


def point_at(app: Flask, server: SmtpServer | DroppingSmtpServer | None, **extra: Any) -> None:
    """Configure the app's SMTP settings for `server` (None: SMTP unset, nothing is sent)."""
    if server is None:
        app.config.update(SMTP_HOST=None, SMTP_PORT=None)
    else:
        app.config.update(server.env())
        cert = getattr(server, "cert", None)
        app.config["SMTP_CA_FILE"] = str(cert.cert_path) if cert is not None else None
    app.config.update(
        MAIL_FROM=MAIL_FROM,
        SUPPORT_ADDRESS="atendimento@vetorsolucoes.com.br",
        SMTP_CONNECT_TIMEOUT=5,
        SMTP_READ_TIMEOUT=10,
        DESK_BASE_URL="https://desk.example",
        **extra,
    )


@pytest.fixture
def mail_app(app: Flask, smtp_server: SmtpServer) -> Flask:
    """The app (SQLite and PostgreSQL) sending to a private plain SMTP server."""
    point_at(app, smtp_server)
    return app


@pytest.fixture
def users(session: DbSession) -> dict[str, User]:
    """One user per role, like tests.onboarding.helpers.make_users but without the (slow)
    password hashing: these tests log in through the session, never with a password."""
    made = {
        role.value: User(email=f"{role.value}@test.example", role=role, name=role.value, password_hash="!")
        for role in Role
    }
    session.add_all(made.values())
    session.commit()
    return made


def session_cookie(app: Flask, user: User) -> str:
    """The signed Flask session cookie value of `user` logged in (for the browser)."""
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return str(serializer.dumps({"_user_id": str(user.id), "_fresh": True}))


def logged_in_client(app: Flask, user: User) -> Any:
    client = CsrfClient(app, app.response_class, use_cookies=True)
    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = str(user.id)
        flask_session["_fresh"] = True
    return client


class DroppingSmtpServer:
    """A real SMTP server that takes the message and then drops the connection before its
    reply to DATA, as when the network breaks at the worst moment (`drop_next` times)."""

    def __init__(self, drop_next: int = 1) -> None:
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.drop_next = drop_next
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.received.append(bytes(envelope.original_content or b""))
            drop = self.drop_next > 0
            self.drop_next -= 1 if drop else 0
        if drop and server.transport is not None:
            server.transport.abort()
            await asyncio.sleep(0)
        return "250 OK"

    def env(self) -> dict[str, str]:
        return {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), "SMTP_SECURITY": "none"}

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


@pytest.fixture
def dropping_smtp() -> Iterator[DroppingSmtpServer]:
    server = DroppingSmtpServer()
    server.start()
    yield server
    server.stop()


@dataclass
class Stopped:
    """A port where no SMTP server listens (the server is down)."""

    host: str
    port: int

    def env(self) -> dict[str, str]:
        return {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), "SMTP_SECURITY": "none"}


@pytest.fixture
def wait_for() -> Callable[..., None]:
    from tests.support.services import wait_until

    return wait_until
