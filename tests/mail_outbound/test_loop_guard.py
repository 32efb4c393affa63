"""Recognising automatic mail, so nothing automatic ever answers it."""

from __future__ import annotations

import email
import email.policy

import pytest

from mail_ingest.loop_guard import automatic_reason, should_auto_reply

HUMAN = {"From": "Maria <maria@drogaria.example>", "Subject": "Dúvida"}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"auto-submitted": "Auto-Generated; foo=bar"}, "Auto-Submitted: auto-generated; foo=bar"),
        ({"X-Autoreply": "yes"}, "X-Autoreply present"),
        ({"X-Autorespond": "1"}, "X-Autorespond present"),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"Precedence": "junk"}, "Precedence: junk"),
        ({"List-Id": "<lista.example>"}, "mailing list"),
        (
            {"X-Auto-Response-Suppress": "OOF, AutoReply"},
            "X-Auto-Response-Suppress asks for no automatic answer",
        ),
        ({"Content-Type": 'multipart/report; report-type="delivery-status"'}, "delivery status notification"),
        ({"Return-Path": "<>"}, "null return path (bounce)"),
        ({"From": "Mail Delivery System <MAILER-DAEMON@mx.example>"}, "sent by mailer-daemon@mx.example"),
    ],
)
def test_automatic_mail_is_recognised(headers: dict[str, str], expected: str) -> None:
    assert automatic_reason({**HUMAN, **headers}) == expected
    assert should_auto_reply({**HUMAN, **headers}) is False


def test_mail_written_by_a_person_may_be_answered() -> None:
    assert automatic_reason(HUMAN) is None
    assert automatic_reason({**HUMAN, "Auto-Submitted": "No"}) is None
    assert should_auto_reply({"From": "joao@farmacia.example", "Precedence": "normal"}) is True


def test_works_on_parsed_messages() -> None:
    raw = b"From: ferias@cliente.example\r\nAuto-Submitted: auto-replied\r\nSubject: Ausente\r\n\r\nFora.\r\n"
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert should_auto_reply(message) is False
    raw_human = b"From: joao@cliente.example\r\nSubject: Oi\r\n\r\nOi.\r\n"
    assert should_auto_reply(email.message_from_bytes(raw_human, policy=email.policy.default)) is True
