"""Signed reply tokens: our Message-IDs name their ticket, and nobody can forge one."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from mail_ingest import tokens

SECRET = "test-secret"


@given(ticket_id=st.integers(min_value=1, max_value=10**12))
def test_round_trip(ticket_id: int) -> None:
    message_id = tokens.make_message_id(ticket_id, SECRET)
    assert message_id.startswith(f"<ex.{ticket_id}.") and message_id.endswith("@vetorsolucoes.com.br>")
    assert tokens.ticket_id_from_message_id(message_id, SECRET) == ticket_id
    assert tokens.ticket_id_from_message_id(message_id.strip("<>"), SECRET) == ticket_id
    assert tokens.ticket_id_from_message_id(f"  {message_id.upper()} ", SECRET) == ticket_id


def test_each_message_id_is_new() -> None:
    assert len({tokens.make_message_id(7, SECRET) for _ in range(50)}) == 50


@given(
    ticket_id=st.integers(min_value=1, max_value=10**9),
    position=st.integers(min_value=0, max_value=200),
    replacement=st.sampled_from(string.ascii_lowercase + string.digits),
)
def test_any_altered_character_is_rejected(ticket_id: int, position: int, replacement: str) -> None:
    message_id = tokens.make_message_id(ticket_id, SECRET)
    local = message_id[1 : message_id.index("@")]
    index = position % len(local)
    if local[index] == replacement or local[index] == ".":
        return
    tampered = "<" + local[:index] + replacement + local[index + 1 :] + message_id[message_id.index("@") :]
    assert tokens.ticket_id_from_message_id(tampered, SECRET) is None


def test_other_ticket_or_other_secret_is_rejected() -> None:
    message_id = tokens.make_message_id(41, SECRET)
    _ex, _ticket, nonce, signature = message_id[1:].split("@")[0].split(".")
    assert (
        tokens.ticket_id_from_message_id(f"<ex.42.{nonce}.{signature}@vetorsolucoes.com.br>", SECRET) is None
    )
    assert tokens.ticket_id_from_message_id(message_id, "another-secret") is None


def test_foreign_and_malformed_ids_give_none() -> None:
    for value in (
        None,
        "",
        "<CAKx1=abc@mail.gmail.com>",
        "<ex.0.abcdef0123456789.0123456789@vetorsolucoes.com.br>",
        "<ex.12.abcdef0123456789@vetorsolucoes.com.br>",
        "<ex.12.zz.0123456789@vetorsolucoes.com.br>",
        "<exm.abcdef0123456789@vetorsolucoes.com.br>",
    ):
        assert tokens.ticket_id_from_message_id(value, SECRET) is None


def test_mail_without_ticket_gets_an_unsigned_id() -> None:
    message_id = tokens.make_message_id(None, SECRET, "example.org")
    assert message_id.startswith("<exm.") and message_id.endswith("@example.org>")
    assert tokens.ticket_id_from_message_id(message_id, SECRET) is None


def test_ticket_from_in_reply_to_or_references() -> None:
    ours = tokens.make_message_id(5, SECRET)
    newer = tokens.make_message_id(6, SECRET)
    foreign = "<abc@mail.example>"
    assert tokens.ticket_id_from_headers(foreign, f"{ours} {foreign}", SECRET) == 5
    assert tokens.ticket_id_from_headers(None, f"{ours}\r\n {newer}", SECRET) == 6
    assert tokens.ticket_id_from_headers(ours, f"{newer}", SECRET) == 5
    assert tokens.ticket_id_from_headers(foreign, foreign, SECRET) is None
    assert tokens.message_ids_in(f"{ours}\r\n\t{foreign}") == [ours, foreign]


def test_message_ids_in_headers() -> None:
    assert tokens.message_ids_in(None) == []
    assert tokens.message_ids_in("  ") == []
    assert tokens.message_ids_in("abc@mail.example") == ["<abc@mail.example>"]
    assert tokens.message_ids_in("not an id") == []
    assert tokens.message_ids_in("<a@x> (comment) <b@y>") == ["<a@x>", "<b@y>"]
