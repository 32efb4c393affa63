"""Triage and quarantine for agents: the JSON API (`/api/v1/mail/...`, ticket messages) and the
web pages (list, sanitized view, open a ticket from a mail, dismiss)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from mail_ingest.inbound_models import InboundMessage, InboundOutcome
from onboarding import auth, db
from onboarding.models import AuditEvent, StepKey, User
from tests.mail_ingest.ingest_helpers import (
    by_message_id,
    configure,
    fresh_session,
    mail,
    messages,
    new_message_id,
    poll,
    sample,
    tickets,
)
from tests.onboarding.helpers import make_users
from tests.support.dovecot import DovecotServer
from tests.web.helpers import CsrfClient

ONBOARDING_ID = "<20261116124210.5F2A1C0039@mx.boavistatecnologia.com.br>"


@pytest.fixture
def tokens(app: Flask) -> dict[str, str]:
    with app.app_context():
        session = db.session()
        users = make_users(session)
        issued = {role: auth.issue_token(session, user) for role, user in users.items()}
        session.commit()
    return issued


def _get(client: Any, path: str, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(path, headers=headers)


def _deliver(app: Flask, server: DovecotServer, *raws: bytes) -> None:
    configure(app, server)
    for raw in raws:
        server.append(raw)
    poll(app)


def test_triage_and_quarantine_lists_are_paged_for_agents_only(
    app: Flask, client: Any, tokens: dict[str, str], imap_mailbox: DovecotServer
) -> None:
    triage_ids = [new_message_id(f"t{i}") for i in range(3)]
    _deliver(
        app,
        imap_mailbox,
        *(mail(subject=f"dúvida {i}", message_id=mid) for i, mid in enumerate(triage_ids)),
        b"lixo sem cabecalho\r\n",
        sample("01"),
    )

    page1 = _get(client, "/api/v1/mail/triage?per_page=2", tokens["agent"]).get_json()
    page2 = _get(client, "/api/v1/mail/triage?per_page=2&page=2", tokens["admin"]).get_json()
    assert (page1["page"], page1["per_page"], page1["total"]) == (1, 2, 3)
    listed = [item["message_id"] for item in page1["items"] + page2["items"]]
    assert listed == triage_ids  # oldest first
    item = page1["items"][0]
    assert set(item) >= {"id", "message_id", "from", "subject", "received_at", "reason"}
    assert item["from"] == "cliente@farmacia.example" and item["subject"] == "dúvida 0"
    assert item["reason"]

    quarantine = _get(client, "/api/v1/mail/quarantine", tokens["agent"]).get_json()
    assert quarantine["total"] == 1 and quarantine["items"][0]["reason"].startswith("Mensagem malformada")

    assert _get(client, "/api/v1/mail/triage", None).status_code == 401
    assert _get(client, "/api/v1/mail/triage", "exd_wrong").get_json()["error"] == "unauthorized"
    for role in ("developer", "finance"):
        refused = _get(client, "/api/v1/mail/quarantine", tokens[role])
        assert refused.status_code == 403 and set(refused.get_json()) == {"error", "message"}


def test_ticket_messages_are_the_timeline_mail_oldest_first(
    app: Flask, client: Any, tokens: dict[str, str], imap_mailbox: DovecotServer
) -> None:
    reply_id = new_message_id("reply")
    now = datetime.now(UTC)
    # Delivery times (IMAP INTERNALDATE, whole seconds) set apart, as mail arrives in real life.
    _append_at(imap_mailbox, sample("01"), now - timedelta(minutes=10))
    _append_at(
        imap_mailbox,
        mail(
            sender="maria.souza@drogariabomjesus.com.br",
            subject="Re: Novo cliente",
            message_id=reply_id,
            headers={"In-Reply-To": ONBOARDING_ID},
        ),
        now - timedelta(minutes=5),
    )
    _append_at(imap_mailbox, mail(subject="sem relação"), now - timedelta(minutes=4))
    configure(app, imap_mailbox)
    poll(app)
    [ticket] = tickets(app)

    # The agent answers from the ticket: the outbox mail joins the timeline, and the customer's
    # answer to it (quoting our signed Message-ID) comes back to the same ticket.
    from mail_ingest import ticket_mail

    with app.app_context():
        session = db.session()
        agent = session.scalars(select(User).where(User.email == "agent@test.example")).one()
        ours = ticket_mail.send_reply(
            session,
            agent,
            ticket.id,
            to="maria.souza@drogariabomjesus.com.br",
            subject="Re: Novo cliente",
            text="Recebemos, obrigado.",
            in_reply_to=reply_id,
        ).message_id
        session.commit()
    answer_id = new_message_id("answer")
    _append_at(
        imap_mailbox,
        mail(
            sender="maria.souza@drogariabomjesus.com.br",
            subject="Re: Re: Novo cliente",
            message_id=answer_id,
            headers={"In-Reply-To": ours},
        ),
        now + timedelta(minutes=5),
    )
    poll(app)

    for role in ("agent", "developer", "finance"):
        answer = _get(client, f"/api/v1/tickets/{ticket.id}/messages", tokens[role])
        assert answer.status_code == 200
    items = answer.get_json()["items"]
    assert [(i["message_id"], i["direction"]) for i in items] == [
        (ONBOARDING_ID, "in"),
        (reply_id, "in"),
        (ours, "out"),
        (answer_id, "in"),
    ]
    assert [i["kind"] for i in items if i["direction"] == "in"] == ["onboarding", "reply", "reply"]
    assert set(items[0]) >= {"id", "direction", "from", "subject", "received_at", "message_id", "kind"}
    assert items[0]["from"] == "juliana.prado@boavistatecnologia.com.br"
    missing = _get(client, "/api/v1/tickets/99999/messages", tokens["agent"])
    assert missing.status_code == 404 and missing.get_json()["error"] == "ticket_not_found"


def test_agent_opens_a_ticket_from_a_triage_mail_through_the_api(
    app: Flask, client: Any, tokens: dict[str, str], imap_mailbox: DovecotServer
) -> None:
    _deliver(app, imap_mailbox, sample("10"))  # the spoofed request waits in triage
    [spoof] = messages(app)
    headers = {"Authorization": f"Bearer {tokens['agent']}"}
    path = f"/api/v1/mail/triage/{spoof.id}/ticket"

    bad = client.post(path, headers=headers, json={"customer_name": "X", "cnpj": "11.111.111/1111-11"})
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_cnpj"
    assert tickets(app) == []

    created = client.post(
        path,
        headers=headers,
        json={
            "customer_name": "Farmácia Verificada Ltda",
            "cnpj": "34.521.876/0001-03",
            "establishment_codes": ["123456"],
            "contract_done": True,
        },
    )

    assert created.status_code == 201
    [ticket] = tickets(app)
    assert ticket.step(StepKey.CONTRACT).evidence == spoof.message_id
    assert by_message_id(app, spoof.message_id).outcome == InboundOutcome.TICKET
    again = client.post(path, headers=headers, json={"customer_name": "Y", "cnpj": None})
    assert again.status_code == 409 and again.get_json()["error"] == "message_not_in_triage"


def _append_at(server: DovecotServer, raw: bytes, when: datetime) -> None:
    with server.session() as imap:
        imap.append("INBOX", raw, msg_time=when)


def _login(app: Flask, client: Any, email: str) -> None:
    with app.app_context():
        user = db.session().scalars(select(User).where(User.email == email)).one()
        user_id = user.id
    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = str(user_id)
        flask_session["_fresh"] = True


def test_web_triage_view_open_ticket_and_dismiss(
    app: Flask, client: Any, tokens: dict[str, str], imap_mailbox: DovecotServer
) -> None:
    client = CsrfClient(app, app.response_class, use_cookies=True)
    hostile = mail(subject="dúvida", body="x")
    hostile = hostile.replace(b"Content-Type: text/plain", b"Content-Type: text/html").replace(
        b"\nx\n", b'\n<p onclick="steal()">Ol\xc3\xa1</p><script>alert(1)</script>\n'
    )
    _deliver(app, imap_mailbox, sample("11"), hostile, sample("10"))
    question, html_mail, spoof = messages(app)

    anonymous = client.get("/mail/triage")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    _login(app, client, "developer@test.example")
    assert client.get("/mail/triage").status_code == 403
    _login(app, client, "agent@test.example")

    listing = client.get("/mail/triage").get_data(as_text=True)
    assert "dúvida" in listing and "Descartar" in listing
    page = client.get(f"/mail/messages/{html_mail.id}").get_data(as_text=True)
    assert "<script>" not in page and "onclick" not in page and "alert(1)" not in page
    assert 'sandbox=""' in page

    form = client.get(f"/mail/messages/{spoof.id}").get_data(as_text=True)
    assert 'name="cnpj"' in form
    answer = client.post(
        f"/mail/messages/{spoof.id}/ticket",
        data={
            "customer_name": "Farmácia Confirmada Ltda",
            "cnpj": "34521876000103",
            "establishment_codes": "1, 2",
        },
    )
    assert answer.status_code == 302
    [ticket] = tickets(app)
    assert ticket.customer.establishment_codes == ["1", "2"]
    assert ticket.step(StepKey.CONTRACT).status == "pending"  # the agent did not tick the evidence box

    assert client.post(f"/mail/messages/{question.id}/dismiss", data={}).status_code == 302
    assert by_message_id(app, question.message_id).outcome == InboundOutcome.DISMISSED
    remaining = json.loads(
        client.get("/api/v1/mail/triage", headers={"Authorization": f"Bearer {tokens['agent']}"}).data
    )
    assert [i["id"] for i in remaining["items"]] == [html_mail.id]
    with fresh_session(app) as session:
        actions = {e.action for e in session.scalars(select(AuditEvent))}
        assert {"mail.dismissed", "mail.ticket_opened"} <= actions
        dismissed = session.get(InboundMessage, question.id)
        assert dismissed is not None and dismissed.resolved_by_id is not None
