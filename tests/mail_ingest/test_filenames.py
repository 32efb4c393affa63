"""Attachment names are safe to store and to offer for download."""

from __future__ import annotations

import pytest

from mail_ingest.filenames import MAX_FILENAME_LENGTH, safe_filename


@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        ("Relação de lojas.csv", "text/csv", "Relação de lojas.csv"),
        ("../../etc/passwd", "text/plain", "passwd"),
        ("..\\..\\Windows\\system32\\evil.dll", "application/octet-stream", "evil.dll"),
        ("C:\\Users\\ana\\Desktop\\planilha.xlsx", "application/octet-stream", "planilha.xlsx"),
        ("/absoluto/contrato.pdf", "application/pdf", "contrato.pdf"),
        ("nota\x00fiscal\r\n.pdf", "application/pdf", "notafiscal.pdf"),
        ("fatura\u202efdp.exe", "application/octet-stream", "faturafdp.exe"),  # right-to-left override
        ('a<b>c:d"e|f?g*h.txt', "text/plain", "a_b_c_d_e_f_g_h.txt"),
        ("   .oculto  ", "text/plain", "oculto"),
        ("...", "text/csv", "anexo.csv"),
        ("", "application/pdf", "anexo.pdf"),
        (None, "image/png", "anexo.png"),
        (None, "message/rfc822", "anexo.eml"),
        (None, "application/x-desconhecido", "anexo.bin"),
        ("CON.txt", "text/plain", "_CON.txt"),
        ("nul", "text/plain", "_nul"),
        ("=?utf-8?q?Rela=C3=A7=C3=A3o.csv?=", "text/csv", "Relação.csv"),
        ("=?utf-8?b?Li4vLi4vZXRjL3Bhc3N3ZA==?=", "text/plain", "passwd"),  # ../../etc/passwd encoded
        ("Rela\udce7\udce3o.csv", "text/csv", "Relação.csv"),  # raw Latin-1 bytes
        ("cafe\u0301.txt", "text/plain", "café.txt"),  # NFC
        ("muitos     espaços\t.txt", "text/plain", "muitos espaços.txt"),
    ],
)
def test_safe_filename(raw: str | None, content_type: str, expected: str) -> None:
    assert safe_filename(raw, content_type) == expected


def test_long_names_are_capped_keeping_the_extension() -> None:
    name = safe_filename("x" * 500 + ".pdf", "application/pdf")
    assert len(name) == MAX_FILENAME_LENGTH
    assert name.endswith(".pdf")


def test_long_extension_is_not_treated_as_extension() -> None:
    name = safe_filename("a." + "b" * 300, "text/plain")
    assert len(name) <= MAX_FILENAME_LENGTH
    assert name.startswith("a.b")


@pytest.mark.parametrize("raw", ["", "a", "/", "\\", "..", "\x00", "\udcff", "=?", "." * 1000, "\u202e" * 5])
def test_never_empty_never_a_path(raw: str) -> None:
    name = safe_filename(raw)
    assert name
    assert "/" not in name and "\\" not in name
    assert name not in (".", "..")
