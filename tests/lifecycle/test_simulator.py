"""The integrator simulator: seeded, answers each remessa once, finds corrected sales, never lost ones."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from reconciliation import csvformat, matcher, synth
from reconciliation.exchange import FolderTransport, IntegratorAdapter
from reconciliation.simulator import LOST, OK, UNIDENTIFIED, IntegratorSimulator, read_retorno_rows
from tests.lifecycle.helpers import CODE, SP

DAY = date(2025, 3, 10)


def erp(n: int = 40, seed: int = 21) -> list[Any]:
    return synth.generate(
        n, seed=seed, start_date=DAY - timedelta(days=3), days=4, establishments=[CODE]
    ).receipts


def send(folder: Path, receipts: list[Any], day: date = DAY) -> str:
    return IntegratorAdapter(FolderTransport(folder)).send_remessa(CODE, day, receipts, SP).name


def retorno_rows(folder: Path, name: str) -> list[Any]:
    with (folder / "inbox" / name).open("rb") as stream:
        parsed = list(csvformat.read_statement(stream))
    assert not [item for _, item in parsed if isinstance(item, csvformat.RowError)]
    return [item for _, item in parsed]


def test_same_seed_same_answer_other_seed_other_answer(tmp_path: Path) -> None:
    receipts = erp()
    answers = []
    for folder, seed in ((tmp_path / "a", 7), (tmp_path / "b", 7), (tmp_path / "c", 8)):
        send(folder, receipts)
        report = IntegratorSimulator(folder, seed=seed, tz=SP, fault_rate=0.3).run_once()
        answers.append((folder / "inbox" / report.retornos[0]).read_bytes())
    assert answers[0] == answers[1]
    assert answers[0] != answers[2]


def test_a_remessa_is_answered_once_with_realistic_divergences(tmp_path: Path) -> None:
    receipts = erp(120)
    name = send(tmp_path, receipts)
    simulator = IntegratorSimulator(
        tmp_path, seed=3, tz=SP, fault_rate=0.4, unidentified_rate=0.05, lost_rate=0.05
    )
    report = simulator.run_once()
    assert report.remessas == [name] and report.receipts == len(receipts)
    assert (tmp_path / "outbox" / "taken" / name).exists() and not (tmp_path / "outbox" / name).exists()
    assert simulator.run_once().remessas == []  # nothing new
    rows = retorno_rows(tmp_path, report.retornos[0])
    assert len(rows) == report.rows
    behaviours = report.behaviours
    assert behaviours.get(OK, 0) > 0 and behaviours.get(UNIDENTIFIED, 0) > 0 and behaviours.get(LOST, 0) > 0
    assert sum(behaviours.values()) == len(receipts)
    assert len({r.record_id for r in rows}) == len(rows)
    # The engine finds what the acquirer changed: some pairs diverge, the lost ones stay unpaired.
    result = matcher.reconcile(receipts, rows, as_of=DAY, lookback_days=3, tz=SP)
    statuses = {o.status.value for o in result.receipts.values()}
    assert {"matched", "divergent", "pending"} <= statuses
    for sale_id, outcome in result.receipts.items():
        if simulator.behaviour_of(CODE, sale_id) in (UNIDENTIFIED, LOST):
            assert outcome.status.value == "pending", sale_id


def test_resending_a_sale_adds_no_rows_but_a_corrected_unidentified_sale_comes_back(tmp_path: Path) -> None:
    receipts = [r for r in erp() if r.nsu and r.authorization_code][:6]
    unidentified, lost = receipts[0], receipts[1]
    overrides = {unidentified.sale_id: UNIDENTIFIED, lost.sale_id: LOST}

    def simulator() -> IntegratorSimulator:  # a new process each time: the state is on disk
        return IntegratorSimulator(
            tmp_path, seed=1, tz=SP, fault_rate=0, extra_sale_rate=0, overrides=overrides
        )

    send(tmp_path, receipts)
    first = simulator().run_once()
    assert first.rows > 0
    sent_ids = {r.nsu for r in retorno_rows(tmp_path, first.retornos[0])}
    assert unidentified.nsu not in sent_ids and lost.nsu not in sent_ids

    # The same receipts again the next day: nothing new, but an answer (an empty retorno) all the same.
    send(tmp_path, receipts, DAY + timedelta(days=1))
    again = simulator().run_once()
    assert again.rows == 0 and len(again.retornos) == 1
    assert read_retorno_rows(tmp_path / "inbox" / again.retornos[0]) == []

    # Only one identifier corrected is enough for the integrator to find the sale.
    nsu, auth = simulator().acquirer_identifiers(CODE, unidentified.sale_id) or (None, None)
    assert nsu and auth and nsu != unidentified.nsu
    corrected = [replace(unidentified, nsu=nsu), replace(lost, nsu="999999999")]
    send(tmp_path, corrected, DAY + timedelta(days=2))
    back = simulator().run_once()
    rows = retorno_rows(tmp_path, back.retornos[0])
    assert {r.nsu for r in rows} == {nsu} and {r.authorization_code for r in rows} == {auth}
    assert simulator().acquirer_identifiers(CODE, lost.sale_id) is None
    # Retorno files alternate the two CSV dialects of SPEC section 7.
    heads = [
        (tmp_path / "inbox" / n).read_text(encoding="utf-8").split("\n", 1)[0]
        for n in (first.retornos[0], again.retornos[0])
    ]
    assert heads[0].count(",") > 5 and heads[1].count(";") > 5


def test_the_acquirer_sometimes_has_a_sale_the_erp_lacks(tmp_path: Path) -> None:
    receipts = erp(10)
    send(tmp_path, receipts)
    report = IntegratorSimulator(
        tmp_path, seed=4, tz=SP, fault_rate=0, unidentified_rate=0, lost_rate=0, extra_sale_rate=1
    ).run_once()
    rows = retorno_rows(tmp_path, report.retornos[0])
    result = matcher.reconcile(receipts, rows, as_of=DAY + timedelta(days=10), lookback_days=3, tz=SP)
    orphans = [o for o in result.statement.values() if o.status.value == "not_found"]
    assert orphans and all(not o.counterpart_ids for o in orphans)


def test_a_remessa_line_the_integrator_cannot_read_is_counted_not_fatal(tmp_path: Path) -> None:
    receipts = erp(5)
    text = io.StringIO(newline="")
    csvformat.write_remessa(receipts, text, tz=SP)
    (tmp_path / "outbox").mkdir(parents=True)
    (tmp_path / "outbox" / "REMESSA_X_20250310.csv").write_text(
        text.getvalue() + "quebrada,,,\n", encoding="utf-8"
    )
    report = IntegratorSimulator(tmp_path, seed=1, tz=SP, fault_rate=0).run_once()
    assert report.refused_lines == 1 and report.receipts == len(receipts)


def test_cli_answers_the_remessas_of_the_exchange_folder(app: Flask, runner: Any) -> None:
    folder = Path(app.config["RECON_EXCHANGE_DIR"])
    send(folder, erp(8))
    result = runner.invoke(args=["recon", "simulate-integrator", "--seed", "5"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["remessas"] == 1 and summary["receipts"] == 8
    assert [p.name for p in (folder / "inbox").glob("RETORNO_*.csv")] == summary["retornos"]
    bad = runner.invoke(args=["recon", "simulate-integrator", "--seed", "x"])
    assert bad.exit_code != 0
