"""The parsing contract under hostile input: ParsedMessage or ParseError, nothing else."""

from __future__ import annotations

import base64
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mail_ingest.classify import (
    auto_reply_kind,
    bounce_original_message_id,
    is_integrator_sender,
    ticket_numbers_in_subject,
)
from mail_ingest.extract import extract_customer, looks_like_onboarding
from mail_ingest.parse import ParsedMessage, ParseError, parse_message
from tests.mail_ingest.support import INTEGRATOR_DOMAINS, sample_bytes, sample_names

# MAIL_FUZZ_EXAMPLES raises the count for a long hunt; the default keeps the suite fast.
FUZZ = settings(
    max_examples=int(os.environ.get("MAIL_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _check_contract(raw: bytes) -> ParsedMessage | None:
    """Parse, then run every pure consumer; only ParseError may escape parse_message."""
    try:
        parsed = parse_message(raw)
    except ParseError as exc:
        assert isinstance(exc.reason, str)
        assert exc.reason
        return None
    assert isinstance(parsed, ParsedMessage)
    for message in parsed.walk():
        assert isinstance(message.text, str)
        assert isinstance(message.subject, str)
        for text in (message.text, message.subject, message.from_name, message.html_safe or ""):
            text.encode("utf-8")  # valid Unicode: no lone surrogates left
        for attachment in message.attachments:
            assert "/" not in attachment.filename
            assert "\\" not in attachment.filename
            assert attachment.filename
    customer = extract_customer(parsed)
    assert set(customer.missing) <= {"cnpj", "establishment_codes", "company_name", "contact"}
    looks_like_onboarding(parsed)
    assert auto_reply_kind(parsed) in (None, "auto_reply", "bounce")
    bounce_original_message_id(parsed)
    is_integrator_sender(parsed, INTEGRATOR_DOMAINS)
    ticket_numbers_in_subject(parsed.subject)
    return parsed


@FUZZ
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check_contract(raw)


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_after_a_header(raw: bytes) -> None:
    # Behind one valid header, garbage reaches the body and MIME machinery instead of being
    # rejected at once.
    _check_contract(b"From: a@b.example\nContent-Type: multipart/mixed; boundary=x\n" + raw)


_MUTATION = st.tuples(
    st.sampled_from(["replace", "delete", "insert", "duplicate", "truncate", "flip"]),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=0, max_value=64),
    st.binary(min_size=1, max_size=64),
)


def _mutate(raw: bytes, mutations: list[tuple[str, float, int, bytes]]) -> bytes:
    data = bytearray(raw)
    for kind, where, length, payload in mutations:
        pos = int(where * len(data))
        if kind == "replace":
            data[pos : pos + len(payload)] = payload
        elif kind == "delete":
            del data[pos : pos + length]
        elif kind == "insert":
            data[pos:pos] = payload
        elif kind == "duplicate":
            data[pos:pos] = data[pos : pos + length * 8]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "flip" and pos < len(data):
            data[pos] ^= payload[0]
    return bytes(data)


@FUZZ
@given(st.sampled_from(sample_names()), st.lists(_MUTATION, min_size=1, max_size=8))
def test_mutated_samples(name: str, mutations: list[tuple[str, float, int, bytes]]) -> None:
    _check_contract(_mutate(sample_bytes(name), mutations))


# -- generated malformed MIME -------------------------------------------------------------------

_CHARSETS = st.sampled_from(
    [
        "utf-8",
        "UTF8",
        "iso-8859-1",
        "windows-1252",
        "us-ascii",
        "x-unknown",
        "base64",
        "idna",
        "utf-7",
        "utf-16",
        "\"'",
        "",
        "koi8-r",
        "gb2312",
        "unicode-1-1-utf-7",
    ]
)
_CTES = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "bogus", ""])
_TYPES = st.sampled_from(
    [
        "text/plain",
        "text/html",
        "text/csv",
        "application/octet-stream",
        "message/rfc822",
        "message/delivery-status",
        "text/rfc822-headers",
        "multipart/report",
        "image/png",
        "text",
        "/",
        "multipart/",
    ]
)
_HEADER_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "=?utf-8?q?Rela=C3=A7=C3=A3o?=",
            "=?x-bogus?b?////?=",
            "=?utf-8?b?invalid base64?=",
            "=?iso-8859-1?q?=E7=E3?= =?utf-8?q?=C3?=",
            "Boavista Tecnologia <x@gmail.com>",
            '"a@boavistatecnologia.com.br" <x@evil.example>',
            "<<<>>>",
            "undisclosed-recipients:;",
            "a@",
            "@b",
            '"unterminated <a@b.com',
            "Mon, 32 Foo 99999 25:61:61 +9999",
            "\udcff",
        ]
    ),
)


def _header_value(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape").replace(b"\n", b" ").replace(b"\r", b" ")


@st.composite
def _mime_part(draw: st.DrawFn, depth: int = 0) -> bytes:
    content_type = draw(_TYPES)
    headers = [
        b"Content-Type: "
        + content_type.encode()
        + b"; charset="
        + _header_value(draw(_CHARSETS))
        + b'; name="'
        + _header_value(draw(_HEADER_TEXT))
        + b'"',
        b"Content-Transfer-Encoding: " + draw(_CTES).encode(),
    ]
    if draw(st.booleans()):
        headers.append(
            b"Content-Disposition: "
            + draw(
                st.sampled_from(
                    [b"attachment", b"inline", b"", b"attachment; filename*=utf-8''%E2%80%AE..%2F"]
                )
            )
            + b'; filename="'
            + _header_value(draw(_HEADER_TEXT))
            + b'"'
        )
    if content_type.startswith("multipart") and depth < 3:
        boundary = draw(st.sampled_from([b"b1", b"b2", b"", b"--", b"b1 b2"]))
        headers[0] = b"Content-Type: " + content_type.encode() + b'; boundary="' + boundary + b'"'
        children = draw(st.lists(_mime_part(depth + 1), max_size=3))
        body = b"preamble\n"
        for child in children:
            body += b"--" + boundary + b"\n" + child + b"\n"
        if draw(st.booleans()):
            body += b"--" + boundary + b"--\n"
    elif content_type == "message/rfc822" and depth < 3:
        body = draw(_mime_message(depth + 1))
    else:
        body = draw(
            st.one_of(
                st.binary(max_size=300),
                st.sampled_from(
                    [
                        b"CNPJ: 34.521.876/0001-03\nEC: 1234567\nRaz\xe3o Social: X",
                        b"<table><tr><td>CNPJ</td><td>1</td></tr><script>x</script>",
                        base64.b64encode(b"Razao;CNPJ\nA;34.521.876/0001-03"),
                        b"=E7=E3=\n=ZZ",
                        b"Message-ID: <x@y>\n",
                    ]
                ),
            )
        )
    return b"\n".join(headers) + b"\n\n" + body


@st.composite
def _mime_message(draw: st.DrawFn, depth: int = 0) -> bytes:
    top = [
        b"From: " + _header_value(draw(_HEADER_TEXT)),
        b"To: " + _header_value(draw(_HEADER_TEXT)),
        b"Subject: " + _header_value(draw(_HEADER_TEXT)),
        b"Date: " + _header_value(draw(_HEADER_TEXT)),
        b"Message-ID: " + _header_value(draw(_HEADER_TEXT)),
        b"Auto-Submitted: " + _header_value(draw(_HEADER_TEXT)),
        b"MIME-Version: 1.0",
    ]
    draw(st.randoms()).shuffle(top)
    return b"\n".join(top) + b"\n" + draw(_mime_part(depth))


@FUZZ
@given(_mime_message())
def test_generated_malformed_mime(raw: bytes) -> None:
    _check_contract(raw)


@FUZZ
@given(_mime_message())
def test_generated_malformed_mime_with_crlf(raw: bytes) -> None:
    _check_contract(raw.replace(b"\n", b"\r\n"))
