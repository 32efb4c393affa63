"""customer search name: name and trade name without accents or case

The queue's search by name looks in `customer.search_name` (onboarding.search_text), so
"sao joao" finds "São João" on every database. On PostgreSQL its trigram GIN index replaces the
two on the raw names, which nothing searches any more.

Revision ID: 5b0d3e9c4a17
Revises: 201c099fc840
Create Date: 2026-11-28 01:40:00.000000
"""
from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "5b0d3e9c4a17"
down_revision = "201c099fc840"
branch_labels = None
depends_on = None

BATCH = 5000


def _fold(text: str | None) -> str:
    """onboarding.search_text as of this revision (a migration never changes with the code)."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _backfill() -> None:
    bind = op.get_bind()
    customer = sa.table("customer", sa.column("id"), sa.column("name"), sa.column("trade_name"), sa.column("search_name"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(customer.c.id, customer.c.name, customer.c.trade_name)
            .where(customer.c.id > last)
            .order_by(customer.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        bind.execute(
            customer.update().where(customer.c.id == sa.bindparam("row_id")).values(search_name=sa.bindparam("folded")),
            [{"row_id": r.id, "folded": _fold(r.name) + "\n" + _fold(r.trade_name)} for r in rows],
        )
        last = rows[-1].id


def _trigram_installed() -> bool:
    found = op.get_bind().execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first()
    return found is not None


def upgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_name", sa.String(length=420), nullable=False, server_default=""))
    _backfill()
    if op.get_bind().dialect.name == "postgresql" and _trigram_installed():
        op.execute("DROP INDEX IF EXISTS ix_customer_name_trgm")
        op.execute("DROP INDEX IF EXISTS ix_customer_trade_name_trgm")
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_customer_search_name_trgm ON customer USING gin (search_name gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql" and _trigram_installed():
        op.execute("DROP INDEX IF EXISTS ix_customer_search_name_trgm")
        op.execute("CREATE INDEX IF NOT EXISTS ix_customer_name_trgm ON customer USING gin (name gin_trgm_ops)")
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_customer_trade_name_trgm ON customer USING gin (trade_name gin_trgm_ops)"
        )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("search_name")
