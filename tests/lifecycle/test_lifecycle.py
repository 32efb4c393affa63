"""Enabling, the first run, the step 3 guard, failures retried and visible, runs that never overlap."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from rq import SimpleWorker

from onboarding import create_app, db, jobs, services
from onboarding.errors import InvalidInput, PermissionDenied, WorkflowError
from onboarding.models import DevTask, StepKey, User
from reconciliation import csvformat, lifecycle, synth, triage
from reconciliation.integration_models import Integration, SyncPass
from reconciliation.models import Run
from reconciliation.simulator import IntegratorSimulator
from tests.fixtures_app import app_config, wipe
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
from tests.onboarding.helpers import make_users, snapshot
from tests.support.postgres import RedisTestDb
from tests.support.sftp import SftpServer

DAY = date(2025, 3, 10)


def receipts(n: int = 12, seed: int = 3) -> list[Any]:
    return synth.generate(
        n, seed=seed, start_date=DAY - timedelta(days=2), days=3, establishments=[CODE]
    ).receipts


def simulator(app: Flask, **kwargs: Any) -> IntegratorSimulator:
    options = {"fault_rate": 0, "unidentified_rate": 0, "lost_rate": 0, "extra_sale_rate": 0, **kwargs}
    return IntegratorSimulator(app.config["RECON_EXCHANGE_DIR"], seed=2, tz=SP, **options)


# --- configuration ---------------------------------------------------------------------------


def test_configuration_refuses_secrets_and_bad_settings_and_changes_nothing(
    app: Flask, users: dict[str, int], ticket_id: int
) -> None:
    with app.app_context():
        session = db.session()
        developer = session.get(User, users["developer"])
        task = session.scalars(sa.select(DevTask).where(DevTask.ticket_id == ticket_id)).one()
        services.take_dev_task(session, developer, task.id)
        session.commit()
        before = snapshot(session)
        sftp = {"host": "sftp.boavista.example", "username": "vetor", "host_key": "ssh-ed25519 AAAA"}
        attempts: list[tuple[dict[str, Any], str]] = [
            ({"transport": "sftp", "settings": {**sftp, "password": "hunter2"}}, "secret_in_settings"),
            ({"transport": "sftp", "settings": {"host": "h"}}, "invalid_transport_settings"),
            (
                {"transport": "sftp", "settings": {**sftp, "key_file": "/k", "hots": "x"}},
                "invalid_transport_settings",
            ),
            ({"transport": "ftp"}, "invalid_transport"),
            ({"remessa_time": "25:99"}, "invalid_remessa_time"),
            ({"establishment_codes": []}, "missing_establishment_code"),
        ]
        for extra, code in attempts:
            kwargs: dict[str, Any] = {"establishment_codes": [CODE], **extra}
            with pytest.raises(InvalidInput) as refused:
                lifecycle.configure_integration(session, developer, ticket_id, **kwargs)
            assert refused.value.code == code, extra
            session.rollback()
        agent = session.get(User, users["agent"])
        with pytest.raises(PermissionDenied):
            lifecycle.configure_integration(session, agent, ticket_id, establishment_codes=[CODE])
        session.rollback()
        assert snapshot(session) == before

        integration = lifecycle.configure_integration(
            session,
            developer,
            ticket_id,
            establishment_codes=[" 1020304050 ", "2030405060"],
            transport="sftp",
            settings={**sftp, "password_env": "BOAVISTA_SFTP_PASSWORD"},
            remessa_time="7:30",
        )
        session.commit()
        assert integration.establishment_codes == [CODE, "2030405060"]
        assert integration.settings["password_env"] == "BOAVISTA_SFTP_PASSWORD"
        assert "hunter2" not in str(integration.settings)
        assert integration.remessa_time == "07:30"
        assert task.status == "enabled" and task.establishment_codes == [CODE, "2030405060"]
        assert integration.status == "configured"  # not in the cycle until the task is returned


def test_returning_the_task_enables_the_integration_and_runs_it_at_once(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path
) -> None:
    import_receipts(app, receipts(), tmp_path)
    with time_machine.travel(at(DAY, 15), tick=False):
        enable_and_return(app, users["developer"], ticket_id)
    integration = integration_of(app, ticket_id)
    assert integration.status == "enabled" and integration.enabled_at is not None
    assert integration.first_run_id is not None and integration.last_remessa_as_of == DAY
    with app.app_context():
        run = db.session().get(Run, integration.first_run_id)
        assert run is not None and run.as_of == DAY and run.establishment_code == CODE
        passes = db.session().scalars(sa.select(SyncPass)).all()
        assert [(p.trigger, p.status, p.remessas) for p in passes] == [("first_run", "finished", 1)]


def test_step_3_waits_for_the_validation_run_then_for_every_triage(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path
) -> None:
    data = receipts(20)
    import_receipts(app, data, tmp_path)
    card = [r for r in data if r.nsu and r.authorization_code]
    overrides = {card[0].sale_id: synth.NSU, card[1].sale_id: synth.AMOUNT}
    with time_machine.travel(at(DAY, 9), tick=False) as clock:
        enable_and_return(app, users["developer"], ticket_id)

        def blocker() -> tuple[str, str] | None:
            with app.app_context():
                session = db.session()
                return services.step_blocker(
                    session, services.get_ticket(session, ticket_id), StepKey.VALIDATION
                )

        assert blocker()[0] == "first_run_pending"  # type: ignore[index]
        simulator(app, overrides=overrides, extra_sale_rate=1.0).run_once()
        clock.move_to(at(DAY, 10))
        with app.app_context():
            lifecycle.sync_integration(integration_of(app, ticket_id).id)
        reason = blocker()
        assert reason is not None and reason[0] == "divergences_not_triaged"
        assert "faltam 2 divergências" in reason[1]
        rows = triage_rows(app, ticket_id)
        # The sale only the acquirer reported is still inside the window: pending, not a divergence yet.
        assert sorted(r.divergences for r in rows) == ["amount", "nsu"]
        assert "pending" in {s for s, _ in statuses(app, "statement").values()}
        assert all(r.from_validation and r.responsible is None for r in rows)

        with app.app_context():
            session = db.session()
            agent = session.get(User, users["agent"])
            developer = session.get(User, users["developer"])
            with pytest.raises(PermissionDenied):
                triage.set_responsible(session, developer, rows[0].id, "customer")
            session.rollback()
            with pytest.raises(InvalidInput):
                triage.set_responsible(session, agent, rows[0].id, "nobody")
            session.rollback()
            for row, who in zip(rows, ("customer", "integrator"), strict=True):
                triage.set_responsible(session, agent, row.id, who)
                session.commit()
            # Changing one's mind is allowed; the guard only wants every divergence assigned.
            triage.set_responsible(session, agent, rows[0].id, "integrator", "retorno errado")
            session.commit()
        assert blocker() is None
        with app.app_context():
            session = db.session()
            agent = session.get(User, users["agent"])
            services.complete_step(session, agent, ticket_id, StepKey.VALIDATION)
            session.commit()
            problems = triage.problems_for(session, ticket_id, "integrator")
            assert len(problems) == 2 and all(p.startswith("Venda") for p in problems)
            assert triage.problems_for(session, ticket_id, "customer") == []


def test_mail_templates_list_the_divergences_assigned_to_each_party(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path
) -> None:
    data = receipts(10)
    import_receipts(app, data, tmp_path)
    card = next(r for r in data if r.nsu and r.authorization_code)
    with time_machine.travel(at(DAY, 9), tick=False):
        enable_and_return(app, users["developer"], ticket_id)
        simulator(app, overrides={card.sale_id: synth.AUTHORIZATION_CODE}).run_once()
        with app.app_context():
            lifecycle.sync_integration(integration_of(app, ticket_id).id)
        row = triage_rows(app, ticket_id)[0]
        with app.test_request_context():
            from mail_ingest.templates import render_template_mail

            session = db.session()
            ticket = services.get_ticket(session, ticket_id)
            _subject, before, _html = render_template_mail("customer_operation_problem", ticket)
            assert "[[preencher:" in before  # nothing assigned to the customer yet
            triage.set_responsible(session, session.get(User, users["agent"]), row.id, "customer")
            session.commit()
            _subject, text, html = render_template_mail("customer_operation_problem", ticket)
            assert f"Venda {card.sale_id}" in text and "nº de autorização no sistema" in text
            assert card.sale_id in html and "[[preencher:" not in text
            _subject, other, _html = render_template_mail("integrator_problem", ticket)
            assert card.sale_id not in other


# --- failures and retries --------------------------------------------------------------------


def test_a_failed_pass_is_recorded_retried_with_back_off_and_visible(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path
) -> None:
    import_receipts(app, receipts(), tmp_path)
    blocker_file = tmp_path / "not-a-folder"
    blocker_file.write_text("x")
    app.config["RECON_EXCHANGE_DIR"] = str(blocker_file / "troca")  # the exchange is unreachable
    with time_machine.travel(at(DAY, 9), tick=False) as clock:
        enable_and_return(app, users["developer"], ticket_id)
        integration = integration_of(app, ticket_id)
        assert integration.last_sync_status == "failed" and integration.consecutive_failures == 1
        assert "pasta de troca inacessível" in (integration.last_error or "")
        assert integration.next_retry_at == at(DAY, 9) + lifecycle.RETRY_DELAYS[0]
        # The receipts were still reconciled (pending) although nothing could be exchanged.
        assert {s for s, _ in statuses(app).values()} == {"pending"}
        with app.app_context():
            session = db.session()
            ticket = services.get_ticket(session, ticket_id)
            reason = services.step_blocker(session, ticket, StepKey.VALIDATION)
            assert reason is not None and "falhou" in reason[1]

            # Before the retry time the scheduled job leaves it alone.
            assert lifecycle.sync_due() == {"integrations": 0, "waiting_retry": 1, "failed": 0}
        clock.move_to(at(DAY, 9) + lifecycle.RETRY_DELAYS[0] + timedelta(seconds=1))
        with app.app_context():
            assert lifecycle.sync_due() == {"integrations": 1, "waiting_retry": 0, "failed": 1}
        integration = integration_of(app, ticket_id)
        assert integration.consecutive_failures == 2
        assert integration.next_retry_at is not None and integration.last_error_at is not None
        assert integration.next_retry_at - integration.last_error_at == lifecycle.RETRY_DELAYS[1]

        app.config["RECON_EXCHANGE_DIR"] = str(tmp_path / "troca")  # fixed
        clock.move_to(integration.next_retry_at + timedelta(seconds=1))
        with app.app_context():
            assert lifecycle.sync_due()["failed"] == 0
        integration = integration_of(app, ticket_id)
        assert integration.last_sync_status == "finished" and integration.consecutive_failures == 0
        assert integration.last_error is None and integration.next_retry_at is None
        assert integration.last_remessa_as_of == DAY
        with app.app_context():
            passes = db.session().scalars(sa.select(SyncPass).order_by(SyncPass.id)).all()
        assert [(p.trigger, p.status, p.attempt) for p in passes] == [
            ("first_run", "failed", 1),
            ("retry", "failed", 2),
            ("retry", "finished", 3),
        ]
        assert passes[0].error and "pasta de troca inacessível" in passes[0].error


def test_scheduled_passes_send_the_remessa_at_its_time_once_a_day(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path
) -> None:
    import_receipts(app, receipts(), tmp_path)
    with time_machine.travel(at(DAY, 9), tick=False) as clock:
        enable_and_return(app, users["developer"], ticket_id)  # day 1's remessa goes with the first run
        next_day = DAY + timedelta(days=1)
        clock.move_to(at(next_day, 5, 55))
        with app.app_context():
            lifecycle.sync_due()
            integration = db.session().get(Integration, integration_of(app, ticket_id).id)
            assert integration is not None and integration.last_remessa_as_of == DAY  # 06:00 not reached
            assert lifecycle.next_remessa_at(integration, SP) == at(next_day, 6)
        clock.move_to(at(next_day, 6, 5))
        with app.app_context():
            lifecycle.sync_due()
            lifecycle.sync_due()
        integration = integration_of(app, ticket_id)
        assert integration.last_remessa_as_of == next_day
        with app.app_context():
            assert lifecycle.next_remessa_at(integration, SP) == at(next_day + timedelta(days=1), 6)
        outbox = Path(app.config["RECON_EXCHANGE_DIR"]) / "outbox"
        assert sorted(p.name for p in outbox.glob("*.csv")) == [
            f"REMESSA_{CODE}_{DAY:%Y%m%d}.csv",
            f"REMESSA_{CODE}_{next_day:%Y%m%d}.csv",
        ]


def test_runs_of_one_establishment_never_overlap(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path
) -> None:
    import_receipts(app, receipts(), tmp_path)
    with time_machine.travel(at(DAY, 9), tick=False):
        with jobs.exclusive(f"recon-run:{CODE}") as held:  # another run of this establishment
            assert held
            enable_and_return(app, users["developer"], ticket_id)
            integration = integration_of(app, ticket_id)
            assert integration.first_run_id is None and integration.last_sync_status == "partial"
            with app.app_context():
                outcome = lifecycle.sync_integration(integration.id)
            assert outcome.status == "partial" and outcome.skipped == [CODE] and outcome.run_ids == []
        with app.app_context():
            outcome = lifecycle.sync_integration(integration.id, trigger="schedule")
        assert outcome.status == "finished" and len(outcome.run_ids) == 1
    assert integration_of(app, ticket_id).first_run_id == outcome.run_ids[0]


def test_two_passes_of_one_integration_at_once_do_the_work_once(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path
) -> None:
    import_receipts(app, receipts(), tmp_path)
    with time_machine.travel(at(DAY, 9), tick=False):
        enable_and_return(app, users["developer"], ticket_id)
    integration_id = integration_of(app, ticket_id).id
    simulator(app).run_once()
    outcomes: list[Any] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        with app.app_context():
            barrier.wait()
            outcomes.append(lifecycle.sync_integration(integration_id, as_of=DAY))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    imported = sum(len(o.retornos) for o in outcomes)
    assert imported == 1  # the retorno was imported by exactly one of them
    assert sorted(o.status for o in outcomes) in (["busy", "finished"], ["finished", "finished"])


# --- SFTP in the cycle -----------------------------------------------------------------------


def test_a_pass_over_sftp_sends_the_remessa_and_imports_the_retorno(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path, sftp_server: SftpServer
) -> None:
    data = receipts()
    import_receipts(app, data, tmp_path)
    settings = {
        "host": sftp_server.host,
        "port": str(sftp_server.port),
        "username": sftp_server.username,
        "key_file": str(sftp_server.client_key_path),
        "host_key": sftp_server.host_public_key,
    }
    with time_machine.travel(at(DAY, 9), tick=False):
        enable_and_return(app, users["developer"], ticket_id, transport="sftp", settings=settings)
        remote = sftp_server.root_folder
        remessa = remote / "outbox" / f"REMESSA_{CODE}_{DAY:%Y%m%d}.csv"
        assert remessa.exists()
        retorno = synth.retorno_for(data, seed=9, tz=SP)
        text = io.StringIO(newline="")
        csvformat.write_statement_csv(retorno.statement_rows, text, delimiter=";")
        (remote / "inbox" / "RETORNO_1.csv").write_text(text.getvalue(), encoding="utf-8")
        with app.app_context():
            outcome = lifecycle.sync_integration(integration_of(app, ticket_id).id)
        assert outcome.status == "finished" and outcome.retornos == ["RETORNO_1.csv"]
        assert (remote / "inbox" / "archive" / "RETORNO_1.csv").exists()
        assert {s for s, _ in statuses(app).values()} == {"matched"}
        assert integration_of(app, ticket_id).validation_run_id is not None


def test_a_wrong_sftp_host_key_fails_the_pass_visibly(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path, sftp_server: SftpServer
) -> None:
    wrong = sftp_server.write_wrong_known_hosts(tmp_path / "known_hosts")
    settings = {
        "host": sftp_server.host,
        "port": str(sftp_server.port),
        "username": sftp_server.username,
        "key_file": str(sftp_server.client_key_path),
        "known_hosts_file": str(wrong),
    }
    with time_machine.travel(at(DAY, 9), tick=False):
        enable_and_return(app, users["developer"], ticket_id, transport="sftp", settings=settings)
    integration = integration_of(app, ticket_id)
    assert integration.last_sync_status == "failed"
    assert "não é a configurada" in (integration.last_error or "")
    assert not (sftp_server.root_folder / "outbox").exists()  # nothing was sent to that server


def test_a_rejected_retorno_file_is_kept_aside_with_its_reason(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path
) -> None:
    import_receipts(app, receipts(), tmp_path)
    with time_machine.travel(at(DAY, 9), tick=False):
        enable_and_return(app, users["developer"], ticket_id)
        inbox = Path(app.config["RECON_EXCHANGE_DIR"]) / "inbox"
        (inbox / "RETORNO_quebrado.csv").write_text("isto;não;é;um;retorno\n1;2;3;4;5\n", encoding="utf-8")
        with app.app_context():
            outcome = lifecycle.sync_integration(integration_of(app, ticket_id).id)
            from reconciliation.integration_models import ExchangeFile

            files = (
                db.session().scalars(sa.select(ExchangeFile).where(ExchangeFile.direction == "retorno")).all()
            )
    assert outcome.status == "finished" and outcome.rejected == ["RETORNO_quebrado.csv"]
    assert (inbox / "rejected" / "RETORNO_quebrado.csv").exists()
    assert [(f.status, bool(f.error)) for f in files] == [("rejected", True)]


# --- rq ----------------------------------------------------------------------------------------


@pytest.fixture
def redis_app(sqlite_url: str, tmp_path: Path, redis_db: RedisTestDb) -> Iterator[Flask]:
    app = create_app(app_config(sqlite_url, tmp_path, REDIS_URL=redis_db.url))
    yield app
    wipe(app)


def test_with_redis_the_first_run_is_an_rq_job_queued_after_the_commit(
    redis_app: Flask, tmp_path: Path
) -> None:
    with redis_app.app_context():
        session = db.session()
        loaded = make_users(session)
        ticket_id = ticket_at_validation(session, loaded).id
        developer_id = loaded["developer"].id
    import_receipts(redis_app, receipts(), tmp_path)
    with time_machine.travel(at(DAY, 9), tick=False):
        enable_and_return(redis_app, developer_id, ticket_id)
        integration = integration_of(redis_app, ticket_id)
        assert integration.first_run_id is None  # not run yet: queued
        with redis_app.app_context():
            queue = jobs.queue()
            assert queue.count == 1
            queued = queue.jobs[0]
            assert queued.func_name == "reconciliation.lifecycle.first_run"
            assert queued.args == (integration.id,) and queued.retries_left == len(jobs.RETRY_INTERVALS)
            SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert integration_of(redis_app, ticket_id).first_run_id is not None


def test_sync_cli_reports_every_integration_and_exits_non_zero_on_failure(
    app: Flask, runner: Any, users: dict[str, int], ticket_id: int, tmp_path: Path
) -> None:
    import_receipts(app, receipts(), tmp_path)
    with time_machine.travel(at(DAY, 9), tick=False):
        enable_and_return(app, users["developer"], ticket_id)
        result = runner.invoke(args=["recon", "sync", "--as-of", DAY.isoformat()])
        assert result.exit_code == 0, result.output
        assert '"integrations": 1' in result.output.splitlines()[-1]
        bad = runner.invoke(args=["recon", "sync", "--as-of", "10/03/2025"])
        assert bad.exit_code != 0 and "--as-of inválido" in bad.output
        (tmp_path / "x").write_text("")
        app.config["RECON_EXCHANGE_DIR"] = str(tmp_path / "x" / "y")
        failed = runner.invoke(args=["recon", "sync"])
        assert failed.exit_code == 1
        assert '"failed": 1' in failed.output.strip().splitlines()[-1]


def test_with_nothing_imported_for_the_establishments_there_is_nothing_to_triage(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path
) -> None:
    with time_machine.travel(at(DAY, 9), tick=False):
        enable_and_return(app, users["developer"], ticket_id)
        with app.app_context():
            session = db.session()
            ticket = services.get_ticket(session, ticket_id)
            assert services.step_blocker(session, ticket, StepKey.VALIDATION) is None
        # As soon as a receipt of the establishment exists, the validation run is required.
        import_receipts(app, receipts(3), tmp_path)
        with app.app_context():
            session = db.session()
            ticket = services.get_ticket(session, ticket_id)
            blocked = services.step_blocker(session, ticket, StepKey.VALIDATION)
            assert blocked is not None and blocked[0] == "first_run_pending"
            with pytest.raises(WorkflowError):
                services.complete_step(
                    session, session.get(User, users["agent"]), ticket_id, StepKey.VALIDATION
                )


def test_a_retorno_seen_before_is_archived_again_never_imported_twice(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_receipts(app, receipts(), tmp_path)
    folder = Path(app.config["RECON_EXCHANGE_DIR"])
    with time_machine.travel(at(DAY, 9), tick=False):
        enable_and_return(app, users["developer"], ticket_id)
        name = simulator(app).run_once().retornos[0]
        integration_id = integration_of(app, ticket_id).id
        with app.app_context():
            assert lifecycle.sync_integration(integration_id).retornos == [name]
        # The archive step "failed" last time: the same file is back in the inbox.
        (folder / "inbox" / name).write_bytes((folder / "inbox" / "archive" / name).read_bytes())
        with app.app_context():
            from reconciliation.models import ImportBatch

            batches = db.session().scalar(sa.select(sa.func.count()).select_from(ImportBatch))
            again = lifecycle.sync_integration(integration_id)
            assert again.retornos == [] and again.run_ids == []
            assert db.session().scalar(sa.select(sa.func.count()).select_from(ImportBatch)) == batches
        assert (
            not (folder / "inbox" / name).exists() and (folder / "inbox" / "archive" / f"{name}.1").exists()
        )

        # A file too big to read is set aside with its reason, the others go on.
        monkeypatch.setattr("reconciliation.exchange.MAX_RETORNO_BYTES", 10)
        (folder / "inbox" / "RETORNO_enorme.csv").write_text("x" * 50)
        with app.app_context():
            big = lifecycle.sync_integration(integration_id)
        assert big.status == "finished" and big.rejected == ["RETORNO_enorme.csv"]
        assert (folder / "inbox" / "rejected" / "RETORNO_enorme.csv").exists()


def test_the_cycle_is_registered_for_rq_cron_and_runs_under_its_lock(
    app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path
) -> None:
    from onboarding.periodic import run_periodic

    name = "reconciliation.schedule.sync_due_integrations"
    assert name in {f"{p.func.__module__}.{p.func.__name__}" for p in jobs.PERIODIC}
    import_receipts(app, receipts(), tmp_path)
    with time_machine.travel(at(DAY, 9), tick=False):
        enable_and_return(app, users["developer"], ticket_id)
        with app.app_context():
            assert run_periodic(name) == {"integrations": 1, "waiting_retry": 0, "failed": 0}
            with jobs.exclusive(name):
                assert run_periodic(name) is None  # another run of the job holds the lock
