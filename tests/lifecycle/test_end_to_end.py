"""Several simulated days of one integration, on the clock of time-machine (no sleeping):

enable -> first run -> retorno -> validation run -> divergences triaged -> step 3 done ->
corrections -> remessa resent -> retorno back -> corrected receipts reconciled in the window,
one left `manual`.
"""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask

from onboarding import db, services
from onboarding.errors import WorkflowError
from onboarding.models import AuditEvent, StepKey, User
from reconciliation import corrections, synth, triage
from reconciliation.integration_models import ExchangeFile, SyncPass
from reconciliation.models import StoredReceipt
from reconciliation.simulator import LOST, UNIDENTIFIED, IntegratorSimulator
from tests.lifecycle.helpers import (
    CODE,
    SP,
    at,
    enable_and_return,
    import_receipts,
    integration_of,
    statuses,
    ticket_at_validation,
    triage_rows,
)
from tests.onboarding.helpers import make_users

DAY1 = date(2025, 3, 10)


def card_receipts(n: int = 24) -> list[Any]:
    data = synth.generate(n, seed=11, start_date=DAY1 - timedelta(days=3), days=4, establishments=[CODE])
    return data.receipts


def pick(receipts: list[Any], day: date, taken: set[str]) -> Any:
    """A card receipt (NSU and authorization code) of `day`, not picked before."""
    for r in receipts:
        if r.nsu and r.authorization_code and r.local_date(SP) == day and r.sale_id not in taken:
            taken.add(r.sale_id)
            return r
    raise AssertionError(f"no card receipt on {day}")


def sync(runner: Any, as_of: date | None = None) -> dict[str, Any]:
    args = ["recon", "sync"] + (["--as-of", as_of.isoformat()] if as_of else [])
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def remessa_rows(exchange: Path, name: str) -> dict[str, dict[str, str]]:
    path = exchange / "outbox" / "taken" / name
    if not path.exists():
        path = exchange / "outbox" / name
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["sale_id"]: row for row in csv.DictReader(handle)}


def test_days_of_an_integration(app: Flask, runner: Any, tmp_path: Path) -> None:
    exchange = Path(app.config["RECON_EXCHANGE_DIR"])
    receipts = card_receipts()
    taken: set[str] = set()
    s_auth = pick(receipts, DAY1 - timedelta(days=2), taken)  # acquirer has another authorization code
    s_unid = pick(receipts, DAY1 - timedelta(days=3), taken)  # both identifiers typed wrong in the ERP
    s_lost = pick(receipts, DAY1, taken)  # the acquirer never had it
    overrides = {s_auth.sale_id: synth.AUTHORIZATION_CODE, s_unid.sale_id: UNIDENTIFIED, s_lost.sale_id: LOST}

    def integrator() -> IntegratorSimulator:
        return IntegratorSimulator(
            exchange,
            seed=5,
            tz=SP,
            fault_rate=0,
            unidentified_rate=0,
            lost_rate=0,
            extra_sale_rate=0,
            overrides=overrides,
        )

    with app.app_context():
        session = db.session()
        users = make_users(session)
        ids = {name: u.id for name, u in users.items()}
        ticket = ticket_at_validation(session, users)
        ticket_id = ticket.id
    import_receipts(app, receipts, tmp_path)

    with time_machine.travel(at(DAY1, 9), tick=False) as clock:
        # Day 1, 09:00: the developer returns the task; the first pass runs right after the commit.
        enable_and_return(app, ids["developer"], ticket_id)
        integration = integration_of(app, ticket_id)
        assert integration.first_run_id is not None and integration.validation_run_id is None
        assert integration.start_date == DAY1 - timedelta(days=3)
        first_remessa = f"REMESSA_{CODE}_{DAY1:%Y%m%d}.csv"
        assert (exchange / "outbox" / first_remessa).exists()
        assert set(remessa_rows(exchange, first_remessa)) == {r.sale_id for r in receipts}
        assert {s for s, _ in statuses(app).values()} == {"pending"}
        with app.app_context():
            blocked = services.step_blocker(
                db.session(), services.get_ticket(db.session(), ticket_id), StepKey.VALIDATION
            )
        assert blocked is not None and blocked[0] == "first_run_pending"

        # The integrator answers; the next pass imports the retorno and makes the validation run.
        report = integrator().run_once()
        assert report.remessas == [first_remessa] and len(report.retornos) == 1
        clock.move_to(at(DAY1, 10))
        summary = sync(runner)
        assert summary["retornos"] == 1 and summary["remessas"] == 0  # one remessa a day
        assert (exchange / "inbox" / "archive" / report.retornos[0]).exists()
        assert not (exchange / "inbox" / report.retornos[0]).exists()
        integration = integration_of(app, ticket_id)
        assert integration.validation_run_id is not None
        result = statuses(app)
        assert result[s_auth.sale_id] == ("divergent", "authorization_code")
        assert result[s_unid.sale_id][0] == "pending"  # still inside the window
        assert result[s_lost.sale_id][0] == "pending"
        assert sum(1 for s, _ in result.values() if s == "matched") == len(receipts) - 3

        # The same retorno dropped again is not processed twice.
        again = sync(runner)
        assert again["retornos"] == 0 and again["runs"] == 0

        # Step 3 waits for the triage of the validation run's divergences.
        rows = triage_rows(app, ticket_id)
        assert [(r.record_key, r.from_validation, r.divergences) for r in rows] == [
            (s_auth.sale_id, True, "authorization_code")
        ]
        with app.app_context():
            session = db.session()
            agent = session.get(User, ids["agent"])
            with pytest.raises(WorkflowError) as refused:
                services.complete_step(session, agent, ticket_id, StepKey.VALIDATION)
            assert refused.value.code == "divergences_not_triaged"
            session.rollback()
            triage.set_responsible(session, agent, rows[0].id, "customer", "Autorização digitada errada")
            services.complete_step(session, agent, ticket_id, StepKey.VALIDATION, notes="validado")
            session.commit()
            assert triage.problems_for(session, ticket_id, "customer") == [
                triage.details(session, [rows[0]])[0].sentence()
            ]

        # Day 2, 07:00: the daily remessa; the never-identified sale fell out of the window.
        clock.move_to(at(DAY1 + timedelta(days=1), 7))
        day2 = sync(runner)
        assert day2["remessas"] == 1 and day2["runs"] == 1
        result = statuses(app)
        assert result[s_unid.sale_id][0] == "not_found"
        unid_row = next(r for r in triage_rows(app, ticket_id) if r.record_key == s_unid.sale_id)
        assert not unid_row.from_validation and unid_row.divergences == "missing_retorno"
        integrator().run_once()

        # 10:00: the customer, guided by the agent, corrects the three receipts.
        clock.move_to(at(DAY1 + timedelta(days=1), 10))
        sim = integrator()
        true_nsu, true_auth = sim.acquirer_identifiers(CODE, s_unid.sale_id) or (None, None)
        assert true_nsu and true_auth
        with app.app_context(), db.session_scope() as session:
            agent = session.get(User, ids["agent"])
            acquirer_auth = _acquirer_authorization(session, s_auth.sale_id)
            for sale_id, changes in (
                (s_auth.sale_id, {"authorization_code": acquirer_auth}),
                (s_unid.sale_id, {"nsu": true_nsu, "authorization_code": true_auth}),
                (s_lost.sale_id, {"nsu": "123456789"}),
            ):
                corrections.correct_sale(session, sale_id, changes, actor=agent, source="web", tz=SP)
        with app.app_context():
            queued = set(
                db.session().scalars(
                    sa.select(StoredReceipt.sale_id).where(StoredReceipt.resend_pending.is_(True))
                )
            )
        assert queued == {s_auth.sale_id, s_unid.sale_id, s_lost.sale_id}

        # A pass the same day: no second remessa, but the corrected receipts are reconciled again.
        later = sync(runner)
        assert later["remessas"] == 0 and later["runs"] == 1
        result = statuses(app)
        assert result[s_auth.sale_id] == ("matched", "")  # paired again with the rows already received
        assert result[s_unid.sale_id][0] == "pending"  # corrected today: inside the window again
        assert result[s_lost.sale_id][0] == "pending"

        # Day 3, 07:00: the remessa carries the corrections; the integrator now finds the sale.
        day3 = DAY1 + timedelta(days=2)
        clock.move_to(at(day3, 7))
        out = sync(runner)
        assert out["remessas"] == 1
        sent = remessa_rows(exchange, f"REMESSA_{CODE}_{day3:%Y%m%d}.csv")
        assert (
            sent[s_unid.sale_id]["nsu"] == true_nsu
            and sent[s_unid.sale_id]["authorization_code"] == true_auth
        )
        assert s_auth.sale_id in sent and s_lost.sale_id in sent
        with app.app_context():
            assert (
                not db.session()
                .scalars(sa.select(StoredReceipt).where(StoredReceipt.resend_pending.is_(True)))
                .all()
            )
        answer = integrator().run_once()
        assert answer.rows > 0
        back = sync(runner)
        assert back["retornos"] == 1
        result = statuses(app)
        assert result[s_unid.sale_id] == ("matched", "")  # reconciled within the window after correction
        assert result[s_lost.sale_id][0] == "pending"

        # Days go by: still no retorno for the lost sale; the day the window after its correction
        # closes, it turns `manual`.
        correction_day = DAY1 + timedelta(days=1)
        for offset in (3, 4):
            day = correction_day + timedelta(days=offset)
            clock.move_to(at(day, 7))
            sync(runner)
            integrator().run_once()
            sync(runner)
            expected = "pending" if offset <= 3 else "manual"
            assert statuses(app)[s_lost.sale_id][0] == expected, day
        final = statuses(app)
        assert final[s_auth.sale_id][0] == final[s_unid.sale_id][0] == "matched"

    # Everything left a trace: passes, files, triage, audit.
    with app.app_context():
        session = db.session()
        passes = session.scalars(sa.select(SyncPass).order_by(SyncPass.id)).all()
        assert passes[0].trigger == "first_run" and all(p.status == "finished" for p in passes)
        remessas = session.scalars(sa.select(ExchangeFile).where(ExchangeFile.direction == "remessa")).all()
        assert len({(f.establishment_code, f.as_of) for f in remessas}) == len(remessas)
        by_key = {r.record_key: r for r in triage_rows(app, ticket_id)}
        assert by_key[s_auth.sale_id].resolved_at is not None
        assert by_key[s_unid.sale_id].resolved_at is not None
        assert by_key[s_lost.sale_id].resolved_at is None and by_key[s_lost.sale_id].status == "manual"
        audited = session.scalars(sa.select(AuditEvent).where(AuditEvent.action.like("recon.%"))).all()
        actions = {e.action for e in audited}
        assert {"recon.integration_configured", "recon.divergence_triaged", "recon.sale_corrected"} <= actions
        assert all(e.after and e.after.get("ticket_id") in (ticket_id, None) for e in audited)
        from reconciliation.timeline import integration_timeline

        ticket = services.get_ticket(session, ticket_id)
        titles = [e.content["title"] for e in integration_timeline(session, ticket)]  # type: ignore[index]
        assert "Integração configurada" in titles and "Primeira conciliação executada" in titles
        assert "Divergência atribuída: Cliente (operação)" in titles
        assert sum(1 for t in titles if t.endswith("corrigida")) == 3


def _acquirer_authorization(session: Any, sale_id: str) -> str:
    from reconciliation import screens

    rows = screens.counterpart_rows(session, sale_id)
    assert rows and rows[0].authorization_code
    return str(rows[0].authorization_code)
