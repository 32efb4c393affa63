"""App and database fixtures: real PostgreSQL and SQLite, schema made by Alembic only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from onboarding import create_app, db
from onboarding.db import Base
from onboarding.migrate import upgrade
from onboarding.models_registry import import_all_models
from tests.support.postgres import TempDatabase


@pytest.fixture(scope="session")
def pg_url(session_postgres_database: TempDatabase) -> str:
    """A private PostgreSQL database for the session, its schema made by Alembic."""
    upgrade(session_postgres_database.url)
    return session_postgres_database.url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "desk.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


def app_config(url: str, instance: Path, **extra: Any) -> dict[str, Any]:
    return {
        "DATABASE_URL": url,
        "SECRET_KEY": "test-secret",
        "TESTING": True,
        "REDIS_URL": None,
        "RECON_EXCHANGE_DIR": str(instance / "exchange"),
        **extra,
    }


def wipe(app: Flask) -> None:
    """Empty every table after a test (the schema stays, as Alembic made it)."""
    import_all_models()
    engine = app.extensions["db_engine"]
    tables = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            )
        else:
            for table in reversed(tables):
                conn.execute(sa.text(f'DELETE FROM "{table}"'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """The app on each database: tests using it run twice."""
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    flask_app = create_app(app_config(url, tmp_path))
    yield flask_app
    wipe(flask_app)


@pytest.fixture
def pg_app(pg_url: str, tmp_path: Path) -> Iterator[Flask]:
    flask_app = create_app(app_config(pg_url, tmp_path))
    yield flask_app
    wipe(flask_app)


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        yield db.session()


@pytest.fixture
def pg_session(pg_app: Flask) -> Iterator[Session]:
    with pg_app.app_context():
        yield db.session()


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()
