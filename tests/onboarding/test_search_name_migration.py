"""The search-name revision fills the folded names of the customers already there, both ways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from onboarding.migrate import alembic_config, upgrade
from tests.support.postgres import temp_database

BEFORE = "201c099fc840"
REVISION = "5b0d3e9c4a17"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
    else:
        with temp_database("migrate") as database:
            yield database.url


def test_existing_customers_get_their_search_name(empty_url: str) -> None:
    upgrade(empty_url, BEFORE)
    engine = sa.create_engine(empty_url)
    with engine.begin() as conn:
        for n, (name, trade) in enumerate([("Drogaria São João", "Ipê"), ("FARMÁCIA ÁGUA", "")], 1):
            conn.execute(
                sa.text(
                    "INSERT INTO customer (id, name, trade_name, cnpj, contact_name, contact_email,"
                    " contact_phone, created_at) VALUES (:id, :name, :trade, NULL, '', '', '', :now)"
                ),
                {"id": n, "name": name, "trade": trade, "now": "2026-11-28 00:00:00"},
            )
    upgrade(empty_url, REVISION)
    with engine.connect() as conn:
        folded = conn.execute(sa.text("SELECT search_name FROM customer ORDER BY id")).scalars().all()
    assert folded == ["drogaria sao joao\nipe", "farmacia agua\n"]
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            listed = conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'customer'"))
            indexes = set(listed.scalars())
        assert "ix_customer_search_name_trgm" in indexes
        assert not indexes & {"ix_customer_name_trgm", "ix_customer_trade_name_trgm"}

    command.downgrade(alembic_config(empty_url), BEFORE)
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("customer")}
    assert "search_name" not in columns
    upgrade(empty_url)
    engine.dispose()
