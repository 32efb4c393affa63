"""Alembic environment: the metadata of every package, the URL from alembic.ini or the app settings."""

from __future__ import annotations

from alembic import context

from onboarding.config import load_settings
from onboarding.db import Base, make_engine
from onboarding.models_registry import import_all_models

import_all_models()
target_metadata = Base.metadata
config = context.config

# Indexes a revision makes by hand for one dialect only (PostgreSQL trigram / pattern indexes),
# absent from the models on purpose: autogenerate and `alembic check` leave them alone.
DIALECT_ONLY_INDEXES = frozenset(
    {
        "ix_customer_name_trgm",
        "ix_customer_trade_name_trgm",
        "ix_customer_search_name_trgm",
        "ix_customer_cnpj_pattern",
    }
)


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    return not (type_ == "index" and name in DIALECT_ONLY_INDEXES)


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from onboarding import PROJECT_ROOT

    return load_settings(PROJECT_ROOT / "instance")["DATABASE_URL"]


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(database_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_type=True,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
