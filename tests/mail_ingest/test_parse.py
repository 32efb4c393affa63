"""parse_message: charsets, transfer encodings, headers, structure and the ParseError cases."""

from __future__ import annotations

import base64
import hashlib
import quopri
from datetime import UTC, datetime

import pytest

from mail_ingest.parse import MAX_FORWARD_DEPTH, ParseError, derived_message_id, parse_message
from tests.mail_ingest.support import mail

HEAD = "From: Ana <ana@example.com.br>\nTo: atendimento@vetorsolucoes.com.br\nSubject: teste"
TEXT = "Razão Social: Drogaria Conceição Ltda – “filial” ação"


def _text_mail(charset: str, cte: str, body: bytes) -> bytes:
    return mail(
        f"{HEAD}\nContent-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: {cte}", body
    )


# -- charsets and transfer encodings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "cte", "body"),
    [
        ("utf-8", "8bit", TEXT.encode("utf-8")),
        ("UTF-8", "base64", base64.b64encode(TEXT.encode("utf-8"))),
        ("windows-1252", "quoted-printable", quopri.encodestring(TEXT.encode("cp1252"))),
        ("Windows-1252", "base64", base64.b64encode(TEXT.encode("cp1252"))),
        ('"cp1252"', "8bit", TEXT.encode("cp1252")),
        # Mislabelled: the bytes are Windows-1252 or UTF-8 whatever the label says.
        ("us-ascii", "8bit", TEXT.encode("cp1252")),
        ("us-ascii", "8bit", TEXT.encode("utf-8")),
        ("iso-8859-1", "quoted-printable", quopri.encodestring(TEXT.encode("utf-8"))),
        ("iso-8859-1", "8bit", TEXT.encode("cp1252")),  # smart quotes in 0x80-0x9F
        ("x-unknown-charset", "8bit", TEXT.encode("cp1252")),
        ("idna", "8bit", TEXT.encode("utf-8")),  # a codec Python has but mail never uses
        ("base64", "8bit", TEXT.encode("utf-8")),  # not a text encoding at all
        ("", "8bit", TEXT.encode("utf-8")),
    ],
)
def test_body_charsets(charset: str, cte: str, body: bytes) -> None:
    assert parse_message(_text_mail(charset, cte, body)).text == TEXT


def test_iso_8859_1_proper() -> None:
    text = "Código do estabelecimento: 123456 – São João"
    body = quopri.encodestring(text.replace("–", "-").encode("iso-8859-1"))
    parsed = parse_message(_text_mail("iso-8859-1", "quoted-printable", body))
    assert parsed.text == "Código do estabelecimento: 123456 - São João"


def test_utf8_with_stray_windows_1252_bytes() -> None:
    body = "Razão: ".encode() + "Conceição".encode("cp1252")
    assert parse_message(_text_mail("utf-8", "8bit", body)).text == "Razão: Conceição"


def test_no_charset_parameter_sniffs_utf8_and_cp1252() -> None:
    raw = mail(HEAD + "\nContent-Type: text/plain", "ação".encode())
    assert parse_message(raw).text == "ação"
    raw = mail(HEAD, "ação".encode("cp1252"))
    assert parse_message(raw).text == "ação"


def test_broken_base64_and_quoted_printable_do_not_crash() -> None:
    parsed = parse_message(_text_mail("utf-8", "base64", b"UmF6w6Nv!!!@@@=\n===="))
    assert parsed.text.startswith("Razão")
    assert "InvalidBase64CharactersDefect" in parsed.defects
    parsed = parse_message(_text_mail("utf-8", "quoted-printable", b"a=C3=A7=\n=ZZb"))
    assert parsed.text.startswith("aç")


def test_crlf_line_endings() -> None:
    parsed = parse_message(mail(HEAD, "linha 1\nlinha 2\n", crlf=True))
    assert parsed.subject == "teste"
    assert parsed.text == "linha 1\nlinha 2\n"


def test_control_characters_removed_from_text() -> None:
    parsed = parse_message(mail(HEAD, b"a\x00b\x07c\td\x1be"))
    assert parsed.text == "abc\tde"


# -- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_subject", "expected"),
    [
        (b"=?utf-8?q?Integra=C3=A7=C3=A3o?=", "Integração"),
        (b"=?UTF-8?B?SW50ZWdyYcOnw6Nv?=", "Integração"),
        (b"=?iso-8859-1?q?Integra=E7=E3o?= E-extrato", "Integração E-extrato"),
        (b"=?windows-1252?q?=93Novo=94_cliente?=", "“Novo” cliente"),
        # A multibyte character split across two encoded words.
        (b"=?utf-8?q?Integra=C3?=\n =?utf-8?q?=A7=C3=A3o?=", "Integração"),
        (b"Integra\xe7\xe3o sem codificar", "Integração sem codificar"),
        (b"Integra\xc3\xa7\xc3\xa3o em UTF-8 cru", "Integração em UTF-8 cru"),
        (b"=?x-desconhecido?q?Integra=E7=E3o?=", "Integração"),
        (b"=?utf-8?b?!!!?= resto", "=?utf-8?b?!!!?= resto"),
        (b"linha\n dobrada", "linha dobrada"),
    ],
)
def test_subject_decoding(raw_subject: bytes, expected: str) -> None:
    raw = b"From: a@b.example\nSubject: " + raw_subject + b"\n\ncorpo"
    assert parse_message(raw).subject == expected


def test_addresses_and_display_names() -> None:
    raw = mail(
        'From: "Prado, Juliana" <Juliana.Prado@BoavistaTecnologia.com.br>\n'
        "To: =?utf-8?q?Atendimento_Vetor_Solu=C3=A7=C3=B5es?= <atendimento@vetorsolucoes.com.br>,"
        " outro@example.com\n"
        "Cc: undisclosed-recipients:;\n"
        "Reply-To: Respostas <respostas@boavistatecnologia.com.br>"
    )
    parsed = parse_message(raw)
    assert parsed.from_name == "Prado, Juliana"
    assert parsed.from_address == "juliana.prado@boavistatecnologia.com.br"
    assert parsed.to == ("atendimento@vetorsolucoes.com.br", "outro@example.com")
    assert parsed.cc == ()
    assert parsed.reply_to == "respostas@boavistatecnologia.com.br"


@pytest.mark.parametrize(
    ("value", "address", "ambiguous"),
    [
        ('"Juliana Prado" <juliana@boavistatecnologia.com.br>', "juliana@boavistatecnologia.com.br", False),
        ("juliana@boavistatecnologia.com.br", "juliana@boavistatecnologia.com.br", False),
        ("Boavista Tecnologia <boavista@gmail.com>", "boavista@gmail.com", False),
        # What mail clients show is the angle-bracketed address.
        ("juliana@boavistatecnologia.com.br <x@evil.example>", "x@evil.example", True),
        ('"Ju <juliana@boavistatecnologia.com.br>" <x@evil.example>', "x@evil.example", True),
        ("a@boavistatecnologia.com.br, b@evil.example", "a@boavistatecnologia.com.br", True),
    ],
)
def test_from_ambiguity(value: str, address: str, ambiguous: bool) -> None:
    parsed = parse_message(mail(f"From: {value}\nSubject: s"))
    assert parsed.from_address == address
    assert parsed.from_ambiguous is ambiguous


def test_malformed_from_header_is_parsed_leniently() -> None:
    parsed = parse_message(mail('From: "Boavista <x@gmail.com>\nSubject: s'))
    assert parsed.subject == "s"
    assert parsed.from_address is None or "@" in parsed.from_address


def test_missing_from() -> None:
    parsed = parse_message(mail("To: atendimento@vetorsolucoes.com.br\nSubject: sem remetente"))
    assert parsed.from_address is None
    assert parsed.from_name == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<abc@host>", "<abc@host>"),
        ("  <abc@host>  (comment)", "<abc@host>"),
        ("abc@host", "<abc@host>"),
        ("<abc@\n host>", "<abc@host>"),
        ("", None),
        ("<>", None),
        ("sem-arroba", None),
    ],
)
def test_message_id_normalized(value: str, expected: str | None) -> None:
    raw = b"From: a@b.example\nMessage-ID: " + value.encode() + b"\n\nx"
    assert parse_message(raw).message_id == expected


def test_missing_message_id_is_none_and_derived_id_is_stable() -> None:
    raw = mail(HEAD)
    assert parse_message(raw).message_id is None
    derived = derived_message_id(raw)
    assert derived == f"<{hashlib.sha256(raw).hexdigest()}@sha256.invalid>"
    assert derived_message_id(raw) == derived
    assert derived_message_id(raw + b" ") != derived


def test_references_in_order_unique_and_in_reply_to() -> None:
    raw = mail(f"{HEAD}\nIn-Reply-To: <b@x> (resposta)\nReferences: <a@x> <b@x>\n <a@x>\tgarbage <c@x>")
    parsed = parse_message(raw)
    assert parsed.in_reply_to == "<b@x>"
    assert parsed.references == ("<a@x>", "<b@x>", "<c@x>")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mon, 16 Nov 2026 09:42:10 -0300", datetime(2026, 11, 16, 12, 42, 10, tzinfo=UTC)),
        ("16 Nov 2026 09:42:10 -0000", datetime(2026, 11, 16, 9, 42, 10, tzinfo=UTC)),
        ("Mon, 16 Nov 2026 09:42:10 GMT", datetime(2026, 11, 16, 9, 42, 10, tzinfo=UTC)),
        ("ontem à tarde", None),
        ("Mon, 99 Nov 2026 99:99:99 +9999", None),
    ],
)
def test_date(value: str, expected: datetime | None) -> None:
    parsed = parse_message(mail(f"{HEAD}\nDate: {value}"))
    assert parsed.date == expected
    if parsed.date is not None:
        assert parsed.date.tzinfo is not None


def test_classification_headers_kept() -> None:
    raw = mail(
        f"{HEAD}\nAuto-Submitted: auto-replied (vacation)\nPrecedence: bulk\nX-Autoreply: yes\n"
        "Return-Path: <>\nX-Qualquer: fica de fora"
    )
    headers = parse_message(raw).headers
    assert headers["auto-submitted"] == "auto-replied (vacation)"
    assert headers["precedence"] == "bulk"
    assert headers["x-autoreply"] == "yes"
    assert headers["return-path"] == "<>"
    assert "x-qualquer" not in headers


# -- structure --------------------------------------------------------------------------------


def test_html_only_converted_with_inscriptis() -> None:
    html = "<html><body><p>CNPJ: <b>34.521.876/0001-03</b></p><ul><li>um</li><li>dois</li></ul></body></html>"
    raw = mail(f"{HEAD}\nContent-Type: text/html; charset=utf-8", html)
    parsed = parse_message(raw)
    assert "CNPJ: 34.521.876/0001-03" in parsed.text
    assert "* um" in parsed.text
    assert parsed.html_safe is not None


def test_tables_keep_cell_line_breaks_and_split_nested_tables() -> None:
    html = (
        "<table><tr><td>EC</td><td>111111<br>222222</td></tr>"
        "<tr><td>Interna</td><td><table><tr><td>a</td><td>b</td></tr></table></td></tr>"
        "<tr><td> </td><td>&nbsp;</td></tr></table>"
    )
    parsed = parse_message(mail(f"{HEAD}\nContent-Type: text/html", html))
    outer, inner = parsed.tables
    assert outer[0] == ("EC", "111111\n222222")
    assert outer[1][0] == "Interna"
    assert len(outer) == 2  # the blank row is left out
    assert inner == (("a", "b"),)


def test_html_with_xml_declaration_and_garbage() -> None:
    html = '<?xml version="1.0" encoding="utf-8"?><html><body><table><tr><td>x</td></tr>'
    parsed = parse_message(mail(f"{HEAD}\nContent-Type: text/html", html))
    assert parsed.tables == ((("x",),),)


def _multipart(*parts: str, boundary: str = "BB") -> str:
    body = "".join(f"--{boundary}\n{part}\n" for part in parts)
    return body + f"--{boundary}--\n"


def test_attachments_and_inline_parts() -> None:
    body = _multipart(
        "Content-Type: text/plain; charset=utf-8\n\ncorpo",
        "Content-Type: image/png\nContent-Transfer-Encoding: base64\n\n"
        + base64.b64encode(b"\x89PNG").decode(),
        'Content-Type: text/plain; name="dados.txt"\n\nCNPJ: 1',
        "Content-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="../../contrato.pdf"\n\n%PDF',
    )
    parsed = parse_message(mail(f'{HEAD}\nContent-Type: multipart/mixed; boundary="BB"', body))
    assert parsed.text == "corpo"
    names = [(a.filename, a.content_type, a.payload) for a in parsed.attachments]
    assert names == [
        ("anexo.png", "image/png", b"\x89PNG"),
        ("dados.txt", "text/plain", b"CNPJ: 1"),
        ("contrato.pdf", "application/pdf", b"%PDF"),
    ]
    assert parsed.attachments[0].sha256 == hashlib.sha256(b"\x89PNG").hexdigest()
    assert parsed.attachments[0].size == 4


def test_attachment_filename_encodings() -> None:
    body = _multipart(
        "Content-Type: text/plain\n\nx",
        "Content-Type: text/csv\nContent-Disposition: attachment;\n"
        " filename*0*=utf-8''Rela%C3%A7%C3%A3o%20;\n filename*1=\"final.csv\"\n\na;b",
        "Content-Type: text/csv\n"
        'Content-Disposition: attachment; filename="=?utf-8?q?Rela=C3=A7=C3=A3o.csv?="\n\na',
        'Content-Type: text/csv\nContent-Disposition: attachment; filename="Rela\xe7\xe3o.csv"\n\na',
        "Content-Type: text/csv\nContent-Disposition: attachment; filename*=idna''x%FF.csv\n\na",
    )
    raw = mail(f'{HEAD}\nContent-Type: multipart/mixed; boundary="BB"') + body.encode("latin-1")
    names = [a.filename for a in parse_message(raw).attachments]
    assert names[:3] == ["Relação final.csv", "Relação.csv", "Relação.csv"]
    assert names[3].endswith(".csv")


def test_forwarded_message_nested_and_as_eml_octet_stream() -> None:
    inner = (
        "From: cliente@farmacia.example\nSubject: interno\nMessage-ID: <in@x>\n\nCNPJ: 34.521.876/0001-03\n"
    )
    body = _multipart(
        "Content-Type: text/plain\n\nsegue",
        "Content-Type: message/rfc822\n\n" + inner,
        'Content-Type: application/octet-stream; name="fwd.eml"\nContent-Transfer-Encoding: base64\n\n'
        + base64.b64encode(inner.replace("<in@x>", "<eml@x>").encode()).decode(),
        "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
        + base64.b64encode(inner.replace("<in@x>", "<b64@x>").encode()).decode(),
    )
    parsed = parse_message(mail(f'{HEAD}\nContent-Type: multipart/mixed; boundary="BB"', body))
    assert [m.message_id for m in parsed.forwarded] == ["<in@x>", "<eml@x>", "<b64@x>"]
    assert all("CNPJ: 34.521.876/0001-03" in m.text for m in parsed.forwarded)
    assert parsed.attachments == ()


def test_deeply_forwarded_messages_stop_and_are_kept_as_attachments() -> None:
    message = "From: fundo@x.example\nSubject: nivel\n\nfim\n"
    for _ in range(MAX_FORWARD_DEPTH + 2):
        message = "From: a@x.example\nSubject: nivel\nContent-Type: message/rfc822\n\n" + message
    parsed = parse_message(message.encode())
    depth = 0
    current = parsed
    while current.forwarded:
        current = current.forwarded[0]
        depth += 1
    assert depth == MAX_FORWARD_DEPTH
    assert current.attachments[0].content_type == "message/rfc822"
    assert b"fundo@x.example" in current.attachments[0].payload


def test_deep_multipart_nesting_is_cut_not_fatal() -> None:
    body = "corpo"
    for level in range(60):
        body = f'Content-Type: multipart/mixed; boundary="b{level}"\n\n--b{level}\n{body}\n--b{level}--'
    parsed = parse_message(f"From: a@b.example\n{body}".encode())
    assert any("nested too deeply" in defect for defect in parsed.defects)


def test_text_rfc822_headers_part() -> None:
    body = _multipart(
        "Content-Type: text/plain\n\nfalhou",
        "Content-Type: text/rfc822-headers\n\n"
        "Message-ID: <orig@x>\nSubject: =?utf-8?q?Integra=C3=A7=C3=A3o?=",
        boundary="R",
    )
    raw = mail(f'{HEAD}\nContent-Type: multipart/report; report-type=delivery-status; boundary="R"', body)
    parsed = parse_message(raw)
    assert parsed.attached_headers[0]["message-id"] == "<orig@x>"
    assert parsed.attached_headers[0]["subject"] == "Integração"
    assert parsed.report_type == "delivery-status"


def test_leading_blank_lines_and_mbox_lines_are_skipped() -> None:
    assert parse_message(b"\r\n\nFrom: a@b.example\nSubject: x\n\ny").subject == "x"
    assert parse_message(b">From a@b Mon Jan 1\nFrom: a@b.example\nSubject: x\n\ny").subject == "x"
    assert (
        parse_message(b"From a@b Mon Jan 1 00:00:00 2026\nFrom: a@b.example\nSubject: x\n\ny").subject == "x"
    )


# -- ParseError --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message"),
        (b" \r\n\t\n", "empty message"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "no header section: not a mail message"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "no header section: not a mail message"),
        (b"Ol\xe1, isto n\xe3o \xe9 um e-mail.", "no header section: not a mail message"),
        (
            b"Nome: Drogaria\nCNPJ: 1\n\ncorpo",
            "not a mail message: none of From, To, Subject, Date, Message-ID, Received",
        ),
    ],
)
def test_unreadable_input_raises_parse_error_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_message(raw)
    assert caught.value.reason == reason
    assert str(caught.value) == reason


def test_non_bytes_input_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="expected bytes"):
        parse_message("From: a@b\n\nx")  # type: ignore[arg-type]


def test_bytearray_and_memoryview_accepted() -> None:
    raw = mail(HEAD, "x")
    assert parse_message(bytearray(raw)).subject == "teste"
    assert parse_message(memoryview(raw)).subject == "teste"
