"""Classification, end to end from a Dovecot mailbox: onboarding, replies, auto-replies, bounces,
spoofed senders, triage and quarantine, and what is extracted from the customer's data."""

from __future__ import annotations

import random

from flask import Flask
from sqlalchemy import select

from mail_ingest.inbound_models import InboundKind, InboundOutcome, InboundStatus
from mail_ingest.tokens import make_message_id
from onboarding.models import AuditEvent, StepKey
from onboarding.services import FLAG_INCOMPLETE
from tests.mail_ingest.ingest_helpers import (
    BOAVISTA,
    SUPPORT,
    by_message_id,
    configure,
    fresh_session,
    mail,
    make_cnpj,
    messages,
    new_message_id,
    onboarding_mail,
    poll,
    row_counts,
    sample,
    tickets,
)
from tests.support.dovecot import DovecotServer

ONBOARDING_ID = "<20261116124210.5F2A1C0039@mx.boavistatecnologia.com.br>"  # samples/01


def _deliver(app: Flask, server: DovecotServer, *raws: bytes) -> None:
    configure(app, server)
    for raw in raws:
        server.append(raw)
    poll(app)


def test_integrator_request_opens_ticket_with_contract_done_and_the_mail_as_evidence(
    app: Flask, imap_mailbox: DovecotServer
) -> None:
    _deliver(app, imap_mailbox, sample("01"))

    [ticket] = tickets(app)
    contract = ticket.step(StepKey.CONTRACT)
    assert contract.status == "done" and contract.evidence == ONBOARDING_ID
    assert contract.completed_by_id is None  # done by the system, on the mail's evidence
    assert ticket.current_step == StepKey.DEV_HANDOFF
    assert ticket.customer.cnpj == "34521876000103"
    assert ticket.customer.name == "Drogaria Bom Jesus Ltda"
    assert ticket.customer.establishment_codes == ["1048293751"]
    assert FLAG_INCOMPLETE not in ticket.flags
    message = by_message_id(app, ONBOARDING_ID)
    assert (message.outcome, message.kind, message.ticket_id) == ("ticket", "onboarding", ticket.id)


def test_request_missing_the_cnpj_opens_a_flagged_ticket(app: Flask, imap_mailbox: DovecotServer) -> None:
    _deliver(app, imap_mailbox, sample("08"))

    [ticket] = tickets(app)
    assert ticket.flags[0] == FLAG_INCOMPLETE and "missing_cnpj" in ticket.flags
    assert ticket.customer.establishment_codes == ["6655443322"]
    assert ticket.step(StepKey.CONTRACT).status == "done"


def test_request_with_an_invalid_cnpj_or_no_establishment_code_is_flagged(
    app: Flask, imap_mailbox: DovecotServer
) -> None:
    rng = random.Random(7)
    _deliver(
        app,
        imap_mailbox,
        sample("09"),
        onboarding_mail(make_cnpj(rng), name="Farmácia Sem Código Ltda", codes=()),
    )

    invalid, no_code = tickets(app)
    assert FLAG_INCOMPLETE in invalid.flags and "invalid_cnpj" in invalid.flags
    assert invalid.customer.cnpj is None
    assert FLAG_INCOMPLETE in no_code.flags and "missing_establishment_code" in no_code.flags
    assert no_code.customer.cnpj is not None


def test_a_second_request_for_the_same_cnpj_joins_the_open_ticket(
    app: Flask, imap_mailbox: DovecotServer
) -> None:
    cnpj = make_cnpj(random.Random(11))
    second_id = new_message_id("again")
    _deliver(
        app,
        imap_mailbox,
        onboarding_mail(cnpj, codes=("1111111111",)),
        onboarding_mail(cnpj, codes=("2222222222",), message_id=second_id),
    )

    [ticket] = tickets(app)
    second = by_message_id(app, second_id)
    assert (second.outcome, second.ticket_id) == (InboundOutcome.JOINED, ticket.id)


def test_reply_joins_its_ticket_by_in_reply_to(app: Flask, imap_mailbox: DovecotServer) -> None:
    reply_id = new_message_id("reply")
    _deliver(
        app,
        imap_mailbox,
        sample("01"),
        mail(
            sender="maria.souza@drogariabomjesus.com.br",
            subject="Re: Novo cliente",
            message_id=reply_id,
            headers={"In-Reply-To": ONBOARDING_ID, "References": ONBOARDING_ID},
        ),
    )

    [ticket] = tickets(app)
    reply = by_message_id(app, reply_id)
    assert (reply.outcome, reply.kind, reply.ticket_id) == ("reply", "reply", ticket.id)
    with fresh_session(app) as session:
        linked = session.scalars(select(AuditEvent).where(AuditEvent.action == "mail.linked")).all()
        assert [e.ticket_id for e in linked] == [ticket.id]


def test_reply_to_our_signed_message_id_joins_and_a_forged_one_does_not(
    app: Flask, imap_mailbox: DovecotServer
) -> None:
    _deliver(app, imap_mailbox, sample("01"))
    [ticket] = tickets(app)
    ours = make_message_id(ticket.id, app.config["SECRET_KEY"])
    forged = ours.replace(f"<ex.{ticket.id}.", "<ex.9.")
    good_id, bad_id = new_message_id("good"), new_message_id("bad")

    for message_id, parent in ((good_id, ours), (bad_id, forged)):
        imap_mailbox.append(
            mail(
                sender="quem@qualquer.example",
                subject="Re: seu e-mail",
                message_id=message_id,
                headers={"In-Reply-To": parent},
            )
        )
    poll(app)

    assert by_message_id(app, good_id).ticket_id == ticket.id
    bad = by_message_id(app, bad_id)
    assert bad.ticket_id is None and bad.outcome == InboundOutcome.TRIAGE


def test_ticket_number_in_subject_joins_only_from_a_known_participant(
    app: Flask, imap_mailbox: DovecotServer
) -> None:
    _deliver(app, imap_mailbox, sample("01"))
    [ticket] = tickets(app)
    known_id, stranger_id = new_message_id("known"), new_message_id("stranger")
    imap_mailbox.append(
        mail(
            sender="maria.souza@drogariabomjesus.com.br",
            subject=f"Dúvida sobre [#{ticket.number}]",
            message_id=known_id,
        )
    )
    imap_mailbox.append(
        mail(sender="golpista@outro.example", subject=f"Cancelar [#{ticket.number}]", message_id=stranger_id)
    )
    poll(app)

    assert by_message_id(app, known_id).ticket_id == ticket.id
    stranger = by_message_id(app, stranger_id)
    assert stranger.ticket_id is None and stranger.outcome == InboundOutcome.TRIAGE
    assert ticket.number in stranger.reason and "não participa" in stranger.reason


def test_auto_replies_join_their_ticket_or_triage_and_open_nothing(
    app: Flask, imap_mailbox: DovecotServer
) -> None:
    _deliver(app, imap_mailbox, sample("01"))
    [ticket] = tickets(app)
    ours = make_message_id(ticket.id, app.config["SECRET_KEY"])
    cases = {
        new_message_id("rfc3834"): {"Auto-Submitted": "auto-replied", "In-Reply-To": ours},
        new_message_id("xauto"): {"X-Autoreply": "yes", "In-Reply-To": ours},
        new_message_id("precedence"): {"Precedence": "auto_reply", "In-Reply-To": ours},
        new_message_id("orphan"): {"Auto-Submitted": "auto-replied"},
    }
    for message_id, headers in cases.items():
        # Onboarding-looking content from the integrator: still never a ticket, never answered.
        raw = onboarding_mail(make_cnpj(random.Random(len(headers))), message_id=message_id)
        imap_mailbox.append(_with_headers(raw, headers))
    poll(app)

    assert len(tickets(app)) == 1
    got = {mid: by_message_id(app, mid) for mid in cases}
    linked = [m for m in got.values() if m.ticket_id == ticket.id]
    assert len(linked) == 3 and all(m.outcome == InboundOutcome.AUTO_REPLY for m in linked)
    orphan = next(m for m in got.values() if m.ticket_id is None)
    assert orphan.outcome == InboundOutcome.TRIAGE and orphan.kind == InboundKind.AUTO_REPLY
    _assert_nothing_queued_to_send(app)


def test_bounce_joins_the_ticket_of_the_mail_that_bounced(app: Flask, imap_mailbox: DovecotServer) -> None:
    _deliver(app, imap_mailbox, sample("01"))
    [ticket] = tickets(app)
    ours = make_message_id(ticket.id, app.config["SECRET_KEY"])
    dsn = sample("13").replace(b"<ex-000002.3c9d1f20@vetorsolucoes.com.br>", ours.encode())
    imap_mailbox.append(dsn)
    poll(app)

    bounce = by_message_id(app, "<20261118131529.7C1D22A0044@mx.vetorsolucoes.com.br>")
    assert (bounce.outcome, bounce.kind, bounce.ticket_id) == ("bounce", "bounce", ticket.id)
    assert len(tickets(app)) == 1
    _assert_nothing_queued_to_send(app)


def test_bounce_of_our_mail_joins_by_its_subject_only_when_it_went_to_a_participant(
    app: Flask, imap_mailbox: DovecotServer
) -> None:
    _deliver(app, imap_mailbox, sample("01"))
    [ticket] = tickets(app)
    template = sample("13").replace(b"EX-000002", ticket.number.encode())  # an id we never stored
    to_contact = template.replace(
        b"financeiro@farmaciasantaluzia.com.br", b"maria.souza@drogariabomjesus.com.br"
    )
    to_stranger = template.replace(b"7C1D22A0044@mx", b"7C1D22A0045@mx")
    imap_mailbox.append(to_contact)
    imap_mailbox.append(to_stranger)
    poll(app)

    joined = by_message_id(app, "<20261118131529.7C1D22A0044@mx.vetorsolucoes.com.br>")
    assert (joined.outcome, joined.ticket_id) == ("bounce", ticket.id)
    stranger = by_message_id(app, "<20261118131529.7C1D22A0045@mx.vetorsolucoes.com.br>")
    assert (stranger.outcome, stranger.kind, stranger.ticket_id) == ("triage", "bounce", None)


def test_display_name_claiming_boavista_goes_to_triage(app: Flask, imap_mailbox: DovecotServer) -> None:
    _deliver(app, imap_mailbox, sample("10"))

    assert tickets(app) == []
    [spoof] = messages(app)
    assert spoof.outcome == InboundOutcome.TRIAGE
    assert "gmail.com" in spoof.reason and "boavistatecnologia.com.br" in spoof.reason


def test_everything_else_goes_to_triage(app: Flask, imap_mailbox: DovecotServer) -> None:
    _deliver(
        app,
        imap_mailbox,
        sample("11"),
        mail(sender=BOAVISTA, subject="Reunião trimestral", body="Podemos marcar para terça?"),
    )

    assert tickets(app) == []
    assert [(m.status, m.outcome) for m in messages(app)] == [("processed", "triage")] * 2


def test_malformed_mail_is_quarantined_with_its_reason(app: Flask, imap_mailbox: DovecotServer) -> None:
    garbage = b"\x00\x01\x02 isto nao e um e-mail\r\n\r\nsem cabecalhos\r\n"
    _deliver(app, imap_mailbox, garbage, mail(subject="boa"))

    bad = next(m for m in messages(app) if m.status == InboundStatus.QUARANTINED)
    assert bad.kind == InboundKind.MALFORMED and bad.reason.startswith("Mensagem malformada:")
    assert bad.message_id.endswith("@sha256.invalid>")  # no Message-ID: derived from the raw hash
    assert row_counts(app)[0] == 2  # the next message was not blocked


def test_mail_from_our_own_address_never_loops(app: Flask, imap_mailbox: DovecotServer) -> None:
    _deliver(app, imap_mailbox, mail(sender=SUPPORT, subject="Cópia de uma resposta nossa"))

    [own] = messages(app)
    assert own.kind == InboundKind.AUTO_REPLY and own.outcome == InboundOutcome.TRIAGE


def _with_headers(raw: bytes, headers: dict[str, str]) -> bytes:
    extra = "".join(f"{name}: {value}\n" for name, value in headers.items()).encode()
    return extra + raw


def _assert_nothing_queued_to_send(app: Flask) -> None:
    """No outgoing mail was queued (when the outbox of the outbound part is installed)."""
    try:
        from mail_ingest.outbound_models import OutboundMail  # type: ignore[import-not-found]
    except ImportError:
        return
    with fresh_session(app) as session:
        assert session.scalars(select(OutboundMail)).all() == []
