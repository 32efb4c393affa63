"""pytest fixtures for the real services (register with `pytest_plugins`).

Every fixture checks that its service can be had; when not, `require()` skips the test on a
developer machine and fails it in CI (CI=true).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browser import LiveServer, chromium_available, launch_chromium, screenshot
from tests.support.dovecot import DovecotServer, dovecot_available
from tests.support.postgres import (
    RedisNamespace,
    RedisTestDb,
    TempDatabase,
    create_database,
    drop_database,
    postgres_available,
    redis_available,
)
from tests.support.services import require
from tests.support.sftp import SftpServer, sftp_available
from tests.support.smtp import AUTH_WITHOUT_TLS_WARNING, SmtpServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", f"ignore:{AUTH_WITHOUT_TLS_WARNING}:UserWarning")


# -- IMAP (Dovecot) -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """One private Dovecot for the session. Tests usually want `imap_mailbox` instead."""
    reason = dovecot_available()
    if reason:
        require("dovecot", reason)
    server = DovecotServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def imap_mailbox(dovecot: DovecotServer) -> Iterator[DovecotServer]:
    """The session Dovecot, running, with INBOX empty and no other folders."""
    dovecot.start()
    dovecot.reset()
    yield dovecot
    # A test that stopped or killed the server leaves it running for the next one.
    dovecot.start()


# -- SMTP ---------------------------------------------------------------------------------


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., SmtpServer]]:
    """Start SmtpServer(**kwargs) variants (starttls/ssl/auth); all stopped after the test."""
    servers: list[SmtpServer] = []

    def make(**kwargs: Any) -> SmtpServer:
        server = SmtpServer(**kwargs)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.cleanup()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., SmtpServer]) -> SmtpServer:
    """A plain SMTP server (no TLS, no AUTH) on a free loopback port for this test."""
    return smtp_server_factory()


# -- Browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium (playwright.sync_api.Browser) for the session."""
    reason = chromium_available()
    if reason:
        require("chromium", reason)
    from playwright.sync_api import sync_playwright

    manager = sync_playwright().start()
    try:
        chromium = launch_chromium(manager)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        manager.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh browser context (pt-BR, São Paulo time); a failing test leaves a
    screenshot in artifacts/screenshots/FAILED-<test>.png."""
    context = browser.new_context(
        locale="pt-BR", timezone_id="America/Sao_Paulo", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(10_000)
    new_page = context.new_page()
    try:
        yield new_page
        if request.node.stash.get(_CALL_FAILED, False):
            screenshot(new_page, f"FAILED-{request.node.name}")
    finally:
        context.close()


@pytest.fixture
def live_server_factory() -> Iterator[Callable[[Any], LiveServer]]:
    """live_server_factory(wsgi_app) -> LiveServer with `.url`; stopped after the test."""
    servers: list[LiveServer] = []

    def make(app: Any) -> LiveServer:
        server = LiveServer(app)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


# -- SFTP ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sftp_session_server() -> Iterator[SftpServer]:
    reason = sftp_available()
    if reason:
        require("sshd", reason)
    server = SftpServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def sftp_server(_sftp_session_server: SftpServer) -> Iterator[SftpServer]:
    """The session's private sshd (SFTP only), running, with an empty root folder."""
    server = _sftp_session_server
    server.start()
    server.clear_root()
    yield server
    server.start()


# -- PostgreSQL / Redis -------------------------------------------------------------------


def _require_postgres() -> None:
    reason = postgres_available()
    if reason:
        require("postgresql", reason)


@pytest.fixture
def postgres_database_factory() -> Iterator[Callable[..., TempDatabase]]:
    """postgres_database_factory(prefix="test") -> TempDatabase; all dropped after the test."""
    _require_postgres()
    created: list[TempDatabase] = []

    def make(prefix: str = "test") -> TempDatabase:
        database = create_database(prefix)
        created.append(database)
        return database

    yield make
    for database in created:
        drop_database(database)


@pytest.fixture
def postgres_database(postgres_database_factory: Callable[..., TempDatabase]) -> TempDatabase:
    """An empty, uniquely named database for this test (`.url` is the SQLAlchemy URL)."""
    return postgres_database_factory()


@pytest.fixture
def postgres_url(postgres_database: TempDatabase) -> str:
    return postgres_database.url


@pytest.fixture(scope="session")
def session_postgres_database() -> Iterator[TempDatabase]:
    """One database for the whole session (migrate once, roll back per test)."""
    _require_postgres()
    database = create_database("session")
    try:
        yield database
    finally:
        drop_database(database)


@pytest.fixture
def redis_db() -> Iterator[RedisTestDb]:
    """A Redis database leased for this test (`.url`, `.client`), empty before and after."""
    reason = redis_available()
    if reason:
        require("redis", reason)
    leased = RedisTestDb()
    try:
        yield leased
    finally:
        leased.release()


@pytest.fixture
def redis_namespace() -> Iterator[RedisNamespace]:
    """A unique key prefix in Redis db 0 (`.key(name)`); its keys are deleted after the test."""
    reason = redis_available()
    if reason:
        require("redis", reason)
    namespace = RedisNamespace()
    try:
        yield namespace
    finally:
        namespace.close()
