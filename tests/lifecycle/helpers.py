"""Helpers for the integration lifecycle tests: a ticket up to the dev hand-off, ERP receipts, results."""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask

from onboarding import db, services
from onboarding.models import StepKey, Ticket, User
from reconciliation import csvformat, importers, lifecycle, records
from reconciliation.integration_models import DivergenceTriage, Integration
from reconciliation.models import Result

SP = ZoneInfo("America/Sao_Paulo")
CODE = "1020304050"


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    """A moment of the business day `day` in São Paulo."""
    return datetime.combine(day, time(hour, minute), tzinfo=SP)


def ticket_at_validation(session: Any, users: dict[str, User], codes: Iterable[str] = (CODE,)) -> Ticket:
    """A ticket whose steps 1 and 2 are done: its dev task waits in the developers' queue."""
    ticket = services.open_ticket(
        session,
        users["agent"],
        customer_name="Drogaria Ciclo Ltda",
        cnpj="52601815000120",
        establishment_codes=list(codes),
        contact_email="financeiro@ciclo.example",
    )
    for key in (StepKey.CONTRACT, StepKey.DEV_HANDOFF):
        services.complete_step(session, users["agent"], ticket.id, key, notes="ok")
    session.commit()
    return ticket


def enable_and_return(
    app: Flask,
    developer_id: int,
    ticket_id: int,
    codes: Iterable[str] = (CODE,),
    transport: str = "folder",
    settings: dict[str, Any] | None = None,
) -> None:
    """The developer takes the task, configures the integration and returns it (the commit runs the
    first pass in-process, as without Redis)."""
    with app.app_context():
        session = db.session()
        developer = session.get(User, developer_id)
        task = services.get_ticket(session, ticket_id).dev_task
        assert task is not None
        services.take_dev_task(session, developer, task.id)
        lifecycle.configure_integration(
            session,
            developer,
            ticket_id,
            establishment_codes=list(codes),
            transport=transport,
            settings=settings,
        )
        services.return_dev_task(session, developer, task.id)
        session.commit()


def import_receipts(
    app: Flask, receipts: list[records.Receipt], folder: Path, name: str = "vendas.csv"
) -> None:
    """The ERP's receipts, through the real importer (as `recon import-sales`)."""
    text = io.StringIO(newline="")
    csvformat.write_receipts_csv(receipts, text, delimiter=";")
    path = folder / name
    path.write_text(text.getvalue(), encoding="utf-8")
    with app.app_context(), db.session_scope() as session:
        report = importers.import_sales_file(session, path, tz=SP)
        assert not report.errors, report.errors


def statuses(app: Flask, kind: str = "sale") -> dict[str, tuple[str, str]]:
    with app.app_context():
        rows = db.session().execute(
            sa.select(Result.record_key, Result.status, Result.divergences).where(Result.kind == kind)
        )
        return {key: (status, divs) for key, status, divs in rows}


def integration_of(app: Flask, ticket_id: int) -> Integration:
    with app.app_context():
        integration = lifecycle.integration_for_ticket(db.session(), ticket_id)
        assert integration is not None
        return integration


def triage_rows(app: Flask, ticket_id: int) -> list[DivergenceTriage]:
    with app.app_context():
        return list(
            db.session().scalars(
                sa.select(DivergenceTriage)
                .where(DivergenceTriage.ticket_id == ticket_id)
                .order_by(DivergenceTriage.id)
            )
        )
