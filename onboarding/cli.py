"""`flask --app wsgi ...`: db upgrade, users create/token, demo seed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from onboarding import auth, db, migrate
from onboarding.errors import DomainError

db_cli = AppGroup("db", help="Database schema.")
users_cli = AppGroup("users", help="Desk users and API tokens.")
demo_cli = AppGroup("demo", help="Demo data (never for production).")


def fail(message: str) -> None:
    """One line on stderr and a non-zero exit, as every command does on bad input."""
    click.echo(f"erro: {message}", err=True)
    sys.exit(1)


def domain_errors_exit(func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DomainError as error:
            fail(f"{error.message} ({error.code})")
        return None

    return wrapper


@contextmanager
def unit_of_work() -> Iterator[Any]:
    with db.session_scope() as session:
        yield session


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations."""
    migrate.upgrade(current_app.config["DATABASE_URL"])
    click.echo("banco de dados atualizado")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["agent", "developer", "finance", "admin"]))
@click.option("--password", required=True)
@click.option("--name", default="")
@domain_errors_exit
def users_create(email: str, role: str, password: str, name: str) -> None:
    """Create a desk user."""
    with unit_of_work() as session:
        user = auth.create_user(session, email, role, password, name=name)
        click.echo(f"usuário criado: {user.email} ({user.role})")


@users_cli.command("token")
@click.option("--email", required=True)
@domain_errors_exit
def users_token(email: str) -> None:
    """Print a new API token for the user, alone on one line."""
    with unit_of_work() as session:
        token = auth.issue_token(session, auth.user_by_email(session, email), label="cli")
    click.echo(token)


@demo_cli.command("seed")
@domain_errors_exit
def demo_seed() -> None:
    """The demo data of `make run` (idempotent)."""
    from onboarding.demo import seed

    summary = seed()
    click.echo(summary)


def init_app(app: Flask) -> None:
    for group in (db_cli, users_cli, demo_cli):
        app.cli.add_command(group)
