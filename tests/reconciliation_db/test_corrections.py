"""Corrections: dated by the clock, audited, resent in the remessa, matched in the window or `manual`."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import time_machine
from flask import Flask

from onboarding import db
from onboarding.models import AuditEvent
from reconciliation.models import Correction, StoredReceipt
from tests.onboarding.helpers import make_users, snapshot
from tests.reconciliation_db.helpers import (
    RETORNO_COLUMNS,
    SALES_COLUMNS,
    last_json,
    read_export,
    retorno,
    sale,
    write_csv,
)

SP = ZoneInfo("America/Sao_Paulo")


def at(day: date, hour: int = 12) -> datetime:
    """A moment of the business day `day` (São Paulo)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=SP)


def invoke_ok(runner: Any, *args: str) -> dict[str, Any]:
    result = runner.invoke(args=["recon", *args])
    assert result.exit_code == 0, result.output
    return last_json(result.output)


def statuses(runner: Any, tmp_path: Path, as_of: date) -> dict[tuple[str, str], dict[str, str]]:
    out = tmp_path / f"resultado-{as_of}.csv"
    invoke_ok(runner, "export", "--out", str(out), "--as-of", as_of.isoformat())
    return read_export(out)


def import_files(
    runner: Any, tmp_path: Path, sales: list[dict[str, str]], rows: list[dict[str, str]]
) -> None:
    if sales:
        path = write_csv(tmp_path / f"vendas-{len(list(tmp_path.iterdir()))}.csv", SALES_COLUMNS, sales)
        invoke_ok(runner, "import-sales", str(path))
    if rows:
        path = write_csv(tmp_path / f"retorno-{len(list(tmp_path.iterdir()))}.csv", RETORNO_COLUMNS, rows)
        invoke_ok(runner, "import-retorno", str(path))


def test_correction_then_match_within_the_window(app: Flask, runner: Any, tmp_path: Path) -> None:
    with app.app_context():
        users = make_users(db.session())
    # The ERP typed both identifiers wrong: no rule may pair it with the integrator's row.
    import_files(
        runner,
        tmp_path,
        [
            sale("100", nsu="9100", authorization_code="A100"),
            sale("101", sale_datetime="2025-03-14T09:00:00"),
        ],
        [retorno("R100", "100", nsu="7777", authorization_code="B777"), retorno("R101", "101")],
    )
    first = statuses(runner, tmp_path, date(2025, 3, 10))
    assert first[("sale", "100")]["status"] == "pending"
    late = statuses(runner, tmp_path, date(2025, 3, 15))
    assert late[("sale", "100")]["status"] == "not_found"
    assert late[("statement", "R100")]["status"] == "not_found"

    with time_machine.travel(at(date(2025, 3, 15)), tick=False):
        summary = invoke_ok(
            runner,
            "correct",
            "100",
            "--nsu",
            "7777",
            "--authorization-code",
            "b777",
            "--by",
            users["agent"].email,
        )
        assert summary["corrected_on"] == "2025-03-15"
        assert summary["before"] == {"authorization_code": "A100", "nsu": "9100"}
        assert summary["after"] == {"authorization_code": "B777", "nsu": "7777"}
        remessa = tmp_path / "remessa.csv"
        invoke_ok(runner, "remessa", "--out", str(remessa))
        with remessa.open(encoding="utf-8") as handle:
            sent = {row["sale_id"]: row for row in csv.DictReader(handle)}
        # Sale 101 is inside the window; sale 100 only because it was corrected.
        assert sorted(sent) == ["100", "101"]
        assert (sent["100"]["nsu"], sent["100"]["authorization_code"]) == ("7777", "B777")
        run = invoke_ok(runner, "run")  # as of the clock's today
        assert run["as_of"] == "2025-03-15"

    after = statuses(runner, tmp_path, date(2025, 3, 15))
    assert after[("sale", "100")]["status"] == "matched"
    assert after[("sale", "100")]["counterpart_ids"] == "R100"
    assert after[("statement", "R100")]["status"] == "matched"
    assert after[("statement", "R100")]["counterpart_ids"] == "100"
    with app.app_context():
        session = db.session()
        stored = session.scalars(sa.select(StoredReceipt).where(StoredReceipt.sale_id == "100")).one()
        assert (stored.corrected_on, stored.resend_pending) == (date(2025, 3, 15), True)
        correction = session.scalars(sa.select(Correction)).one()
        assert correction.user_id == users["agent"].id and correction.source == "cli"
        event = session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "recon.sale_corrected")
        ).one()
        assert event.actor_id == users["agent"].id
        assert event.before == {"authorization_code": "A100", "nsu": "9100"}
        assert event.after is not None and event.after["nsu"] == "7777"


def test_correction_without_counterpart_turns_manual_after_the_window(
    app: Flask, runner: Any, tmp_path: Path
) -> None:
    import_files(runner, tmp_path, [sale("300"), sale("301")], [])
    with time_machine.travel(at(date(2025, 3, 20), hour=23), tick=False):
        summary = invoke_ok(runner, "correct", "300", "--installments", "2")
    assert summary["corrected_on"] == "2025-03-20"
    expected = {
        date(2025, 3, 20): "pending",
        date(2025, 3, 23): "pending",  # D - L = 20 <= corrected on 20
        date(2025, 3, 24): "manual",
    }
    for as_of, status in expected.items():
        rows = statuses(runner, tmp_path, as_of)
        assert rows[("sale", "300")]["status"] == status, as_of
        assert rows[("sale", "301")]["status"] == "not_found"


def test_correction_by_clock_near_midnight_uses_the_business_date(
    app: Flask, runner: Any, tmp_path: Path
) -> None:
    import_files(runner, tmp_path, [sale("310")], [])
    # 01:30 UTC on the 21st is still the 20th in São Paulo.
    with time_machine.travel(datetime.fromisoformat("2025-03-21T01:30:00+00:00"), tick=False):
        assert invoke_ok(runner, "correct", "310", "--brand", "Elo")["corrected_on"] == "2025-03-20"


def test_correction_recomputes_the_divergences_of_a_pair_that_holds(
    app: Flask, runner: Any, tmp_path: Path
) -> None:
    import_files(
        runner,
        tmp_path,
        [sale("400", amount="100.00", brand="visa")],
        [retorno("R400", "400", sale_amount="90.00", gross_amount="90.00", net_amount="88.20")],
    )
    before = statuses(runner, tmp_path, date(2025, 3, 11))
    assert (before[("sale", "400")]["status"], before[("sale", "400")]["divergences"]) == (
        "divergent",
        "amount",
    )
    with time_machine.travel(at(date(2025, 3, 11)), tick=False):
        invoke_ok(runner, "correct", "400", "--amount", "90,00")
    after = statuses(runner, tmp_path, date(2025, 3, 11))
    assert (after[("sale", "400")]["status"], after[("sale", "400")]["divergences"]) == ("matched", "")
    assert after[("statement", "R400")]["status"] == "matched"


def test_refused_corrections_change_nothing(app: Flask, runner: Any, tmp_path: Path) -> None:
    import_files(runner, tmp_path, [sale("500", installments="3")], [])
    with app.app_context():
        before = snapshot(db.session())
    refused = [
        (["correct", "999", "--nsu", "1"], "não encontrado"),
        (["correct", "500", "--installments", "0"], "installments"),
        (["correct", "500", "--payment-type", "boleto"], "payment_type"),
        (["correct", "500", "--amount", "-3"], "amount"),
        (["correct", "500"], "ao menos um campo"),
        (["correct", "500", "--installments", "3"], "não altera"),
        (["correct", "500", "--nsu", "1", "--by", "ghost@example.com"], "não encontrado"),
    ]
    for args, reason in refused:
        result = runner.invoke(args=["recon", *args])
        assert result.exit_code != 0, args
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert reason in result.output, (args, result.output)
    with app.app_context():
        assert snapshot(db.session()) == before
