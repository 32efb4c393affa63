"""Delivery guarantees: kept while the server is down, retried with back-off, never sent twice."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mail_ingest import outbound
from mail_ingest.outbound import MAX_ATTEMPTS, backoff, queue_mail, recover_stale_claims, requeue, send_due
from mail_ingest.outbound_models import OutboundMail, OutboundStatus
from onboarding import db
from onboarding.db import utcnow
from onboarding.errors import WorkflowError
from onboarding.models import AuditEvent, User
from onboarding.periodic import run_periodic
from tests.mail_outbound.conftest import DroppingSmtpServer, point_at
from tests.onboarding.helpers import open_ticket
from tests.support.smtp import SmtpServer


def queue_one(session: Session, ticket_id: int | None = None, **overrides: Any) -> OutboundMail:
    fields: dict[str, Any] = {
        "ticket_id": ticket_id,
        "to": "cliente@drogaria.example",
        "subject": "Conciliação de cartões",
        "text": "Olá!",
        "automatic": False,
        "actor": None,
    }
    fields.update(overrides)
    mail = queue_mail(session, **fields)
    session.commit()
    session.refresh(mail)
    return mail


def reload(session: Session, mail: OutboundMail) -> OutboundMail:
    session.refresh(mail)
    return mail


def message_ids(server: SmtpServer) -> list[str]:
    return [m.message["Message-ID"] for m in server.messages]


def test_server_down_keeps_the_mail_queued_with_back_off_then_sends_it_once(
    mail_app: Flask, session: Session, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    mail = queue_one(session)  # the job after the commit tries once
    assert (mail.status, mail.attempts) == (OutboundStatus.QUEUED, 1)
    assert "Connection refused" in mail.last_error
    first_retry = mail.next_attempt_at
    assert first_retry - utcnow() > backoff(1) - timedelta(seconds=5)

    assert send_due()["retry"] == 0  # not due yet: the back-off holds
    assert reload(session, mail).attempts == 1

    summary = send_due(ignore_backoff=True)  # --now: try anyway, still down
    assert (summary["retry"], summary["sent"], summary["queued"], summary["due"]) == (1, 0, 1, 0)
    reload(session, mail)
    assert (mail.status, mail.attempts) == (OutboundStatus.QUEUED, 2)
    assert mail.next_attempt_at - first_retry > backoff(1)  # the wait grows

    smtp_server.start()
    assert send_due()["sent"] == 0  # back up, but the mail waits for its next attempt time
    with time_machine.travel(utcnow() + timedelta(hours=1)):
        summaries = [send_due() for _ in range(3)]
    assert [s["sent"] for s in summaries] == [1, 0, 0]
    send_due(ignore_backoff=True)
    assert message_ids(smtp_server) == [mail.message_id]
    reload(session, mail)
    assert (mail.status, mail.attempts, mail.last_error) == (OutboundStatus.SENT, 3, "")


def test_temporary_refusal_is_retried_permanent_refusal_fails(
    mail_app: Flask, session: Session, smtp_server: SmtpServer
) -> None:
    smtp_server.fail_with("451 4.3.0 Try again later")
    temporary = queue_one(session)
    assert (temporary.status, temporary.attempts) == (OutboundStatus.QUEUED, 1)
    assert "451 4.3.0 Try again later" in temporary.last_error

    smtp_server.fail_with("554 5.7.1 Message rejected")
    permanent = queue_one(session, to="outro@drogaria.example")
    assert (permanent.status, permanent.attempts) == (OutboundStatus.FAILED, 1)
    assert "554 5.7.1 Message rejected" in permanent.last_error

    smtp_server.fail_with(None)
    for _ in range(3):
        send_due(ignore_backoff=True)
    assert message_ids(smtp_server) == [temporary.message_id]
    assert reload(session, temporary).status == OutboundStatus.SENT
    assert reload(session, permanent).status == OutboundStatus.FAILED


def test_gives_up_after_max_attempts(mail_app: Flask, session: Session, smtp_server: SmtpServer) -> None:
    smtp_server.stop()
    mail = queue_one(session)
    for _ in range(MAX_ATTEMPTS + 2):
        send_due(ignore_backoff=True)
    reload(session, mail)
    assert (mail.status, mail.attempts) == (OutboundStatus.FAILED, MAX_ATTEMPTS)
    assert mail.last_error.startswith(f"gave up after {MAX_ATTEMPTS} attempts")
    smtp_server.start()
    send_due(ignore_backoff=True)
    assert smtp_server.messages == []
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == str(mail.id))).all()
    assert "mail.failed" in actions


def test_uncertain_outcome_is_not_resent_until_an_agent_requeues(
    app: Flask, session: Session, dropping_smtp: DroppingSmtpServer, users: dict[str, User]
) -> None:
    point_at(app, dropping_smtp)
    ticket = open_ticket(session, users["agent"])
    mail = queue_one(session, ticket.id)
    assert len(dropping_smtp.received) == 1  # the server got it, but its answer never came
    assert mail.status == OutboundStatus.UNCERTAIN
    assert "after the message was sent" in mail.last_error
    for _ in range(3):
        assert send_due(ignore_backoff=True)["sent"] == 0
    assert len(dropping_smtp.received) == 1
    assert reload(session, mail).status == OutboundStatus.UNCERTAIN

    with pytest.raises(WorkflowError):  # only an uncertain/failed/suppressed mail may be requeued
        requeue(session, users["agent"], queue_one(session, ticket.id, to="x@y.example").id)
    session.rollback()
    requeue(session, users["agent"], mail.id)
    session.commit()  # the agent checked it never arrived: sent again, once
    assert len(dropping_smtp.received) == 3
    assert reload(session, mail).status == OutboundStatus.SENT
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == str(mail.id))).all()
    assert {"mail.uncertain", "mail.requeued", "mail.sent"} <= set(actions)


def test_stale_claims_are_requeued_before_data_and_uncertain_after(
    app: Flask, session: Session, smtp_server: SmtpServer
) -> None:
    point_at(app, None)
    before_data = queue_one(session)
    during_data = queue_one(session, to="b@drogaria.example")
    fresh = queue_one(session, to="c@drogaria.example")
    exhausted = queue_one(session, to="d@drogaria.example")
    long_ago = utcnow() - timedelta(hours=1)
    session.execute(
        update(OutboundMail)
        .where(OutboundMail.id.in_([before_data.id, during_data.id]))
        .values(status=OutboundStatus.SENDING, claim_token="crashed", claimed_at=long_ago, attempts=1)
    )
    session.execute(
        update(OutboundMail).where(OutboundMail.id == during_data.id).values(data_started_at=long_ago)
    )
    session.execute(
        update(OutboundMail)
        .where(OutboundMail.id == fresh.id)
        .values(status=OutboundStatus.SENDING, claim_token="alive", claimed_at=utcnow())
    )
    session.execute(
        update(OutboundMail)
        .where(OutboundMail.id == exhausted.id)
        .values(
            status=OutboundStatus.SENDING, claim_token="crashed", claimed_at=long_ago, attempts=MAX_ATTEMPTS
        )
    )
    session.commit()

    assert recover_stale_claims() == 3
    assert reload(session, exhausted).status == OutboundStatus.FAILED
    assert reload(session, before_data).status == OutboundStatus.QUEUED
    assert reload(session, during_data).status == OutboundStatus.UNCERTAIN
    assert reload(session, fresh).status == OutboundStatus.SENDING  # a live sender still owns it

    point_at(app, smtp_server)
    send_due()
    assert message_ids(smtp_server) == [before_data.message_id]


def test_a_claim_is_held_by_one_sender_only(app: Flask, session: Session) -> None:
    point_at(app, None)
    mail = queue_one(session)
    first = outbound.claim_next(only_id=mail.id)
    assert first is not None and first.attempts == 1
    assert outbound.claim_next(only_id=mail.id) is None
    assert outbound.claim_next(ignore_backoff=True) is None


def test_two_concurrent_senders_send_each_mail_once(
    app: Flask, session: Session, smtp_server: SmtpServer
) -> None:
    point_at(app, None)  # queue without sending
    mails = [queue_one(session, to=f"cliente{i}@drogaria.example") for i in range(16)]
    point_at(app, smtp_server)
    barrier = threading.Barrier(2)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            with app.app_context():
                barrier.wait()
                results.append(send_due())
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(r["sent"] for r in results) == 16
    assert sorted(message_ids(smtp_server)) == sorted(m.message_id for m in mails)
    session.expire_all()
    assert {m.status for m in session.scalars(select(OutboundMail))} == {OutboundStatus.SENT}


def test_cli_send_outbox_prints_a_json_summary(
    mail_app: Flask, session: Session, smtp_server: SmtpServer
) -> None:
    runner = mail_app.test_cli_runner()
    smtp_server.stop()
    mail = queue_one(session)
    assert mail.attempts == 1

    smtp_server.start()
    result = runner.invoke(args=["mail", "send-outbox"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["sent"] == 0  # back-off respected

    result = runner.invoke(args=["mail", "send-outbox", "--now"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert (summary["sent"], summary["queued"], summary["smtp"]) == (1, 0, "configured")
    assert message_ids(smtp_server) == [mail.message_id]

    mail_app.config["SMTP_SECURITY"] = "carrier-pigeon"
    result = runner.invoke(args=["mail", "send-outbox"])
    assert result.exit_code == 1
    assert "SMTP_SECURITY inválido" in result.output


def test_the_periodic_job_sends_what_is_due(
    mail_app: Flask, session: Session, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    mail = queue_one(session)
    smtp_server.start()
    with time_machine.travel(utcnow() + timedelta(minutes=5)), mail_app.app_context():
        summary = run_periodic("mail_ingest.outbound.send_outbox_periodic")
    assert summary["sent"] == 1
    assert message_ids(smtp_server) == [mail.message_id]


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_authentication(
    app: Flask, session: Session, smtp_server_factory: Any, security: str
) -> None:
    server = smtp_server_factory(security=security, users={"desk": "s3nha-forte"}, require_tls=True)
    point_at(app, server)
    mail = queue_one(session)
    [received] = server.messages
    assert received.over_tls and received.authenticated_as == "desk"
    assert reload(session, mail).status == OutboundStatus.SENT


def test_starttls_required_but_not_offered_is_not_sent_in_clear(
    app: Flask, session: Session, smtp_server: SmtpServer
) -> None:
    point_at(app, smtp_server)
    app.config["SMTP_SECURITY"] = "starttls"
    mail = queue_one(session)
    assert smtp_server.messages == []
    assert mail.status == OutboundStatus.QUEUED and "does not offer STARTTLS" in mail.last_error


def test_wrong_password_keeps_the_mail(app: Flask, session: Session, smtp_server_factory: Any) -> None:
    server = smtp_server_factory(security="ssl", users={"desk": "certa"})
    point_at(app, server)
    app.config["SMTP_PASSWORD"] = "errada"
    mail = queue_one(session)
    assert server.messages == []
    assert mail.status == OutboundStatus.QUEUED and "authentication refused" in mail.last_error


def test_postgres_sender_skips_a_row_another_sender_has_locked(pg_app: Flask, pg_session: Session) -> None:
    point_at(pg_app, None)
    locked = queue_one(pg_session)
    free = queue_one(pg_session, to="livre@drogaria.example")
    claims: list[Any] = []
    with pg_app.app_context():
        other = db.new_session()  # a sender between its SELECT ... FOR UPDATE and its commit
        other.execute(select(OutboundMail.id).where(OutboundMail.id == locked.id).with_for_update())

        def claim() -> None:
            with pg_app.app_context():
                claims.append(outbound.claim_next())

        thread = threading.Thread(target=claim)
        thread.start()
        thread.join(20)  # SKIP LOCKED: no waiting for the other sender
        other.rollback()
        other.close()
        thread.join(20)
    assert [c.mail_id for c in claims] == [free.id]


def test_with_redis_the_send_job_goes_through_rq_after_the_commit(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, redis_db: Any
) -> None:
    from rq import SimpleWorker

    from onboarding import jobs

    mail_app.config.update(REDIS_URL=redis_db.url, RQ_QUEUE="outbound-test")
    queue = jobs.queue(mail_app)
    mail = queue_mail(
        session, ticket_id=None, to="a@b.example", subject="Oi", text="T", automatic=False, actor=None
    )
    session.flush()
    assert queue.count == 0
    session.commit()
    assert [(j.func_name, j.args) for j in queue.jobs] == [("mail_ingest.outbound.send_mail_job", (mail.id,))]
    assert smtp_server.messages == []
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert message_ids(smtp_server) == [mail.message_id]
    assert reload(session, mail).status == OutboundStatus.SENT
