"""ticket queue and search indexes

"My tickets" (assignee, status, oldest first) gets a composite index on every database.

The queue's search (onboarding.queries.search_condition) asks each branch of its UNION from an
index: ILIKE '%...%' on customer names needs pg_trgm's GIN index, a CNPJ prefix needs a
varchar_pattern_ops btree (the database collation is not "C"). Both are PostgreSQL-only and only
made when the pg_trgm extension can be had; SQLite (the embedded demo) keeps its plain scans.

Revision ID: 3c1f0a9e7b21
Revises: f695bab98fe7
Create Date: 2026-11-27 23:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3c1f0a9e7b21"
down_revision = "f695bab98fe7"
branch_labels = None
depends_on = None


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _trigram_available() -> bool:
    bind = op.get_bind()
    installed = bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first()
    if installed:
        return True
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first()
    if not available:
        return False
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    return True


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ticket_assignee_status_created_at", ["assignee_id", "status", "created_at", "id"], unique=False
        )
    if not _postgres():
        return
    op.execute("CREATE INDEX IF NOT EXISTS ix_customer_cnpj_pattern ON customer (cnpj varchar_pattern_ops)")
    if _trigram_available():
        op.execute("CREATE INDEX IF NOT EXISTS ix_customer_name_trgm ON customer USING gin (name gin_trgm_ops)")
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_customer_trade_name_trgm ON customer USING gin (trade_name gin_trgm_ops)"
        )


def downgrade() -> None:
    if _postgres():
        op.execute("DROP INDEX IF EXISTS ix_customer_trade_name_trgm")
        op.execute("DROP INDEX IF EXISTS ix_customer_name_trgm")
        op.execute("DROP INDEX IF EXISTS ix_customer_cnpj_pattern")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_assignee_status_created_at")
