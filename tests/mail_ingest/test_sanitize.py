"""HTML reaches a page only after nh3: no scripts, event handlers or javascript: URLs."""

from __future__ import annotations

import pytest

from mail_ingest.htmlparts import sanitize_html
from mail_ingest.parse import parse_message
from tests.mail_ingest.support import mail


@pytest.mark.parametrize(
    ("html", "forbidden"),
    [
        ("<p>oi</p><script>alert(document.cookie)</script>", ["<script", "alert"]),
        ('<img src="x.png" onerror="alert(1)">', ["onerror", "alert"]),
        ('<a href="javascript:alert(1)">clique</a>', ["javascript:"]),
        ('<a href="JaVaScRiPt:alert(1)">clique</a>', ["javascript", "alert"]),
        ('<a href="&#106;avascript:alert(1)">x</a>', ["avascript", "alert"]),
        ('<div onclick="roubar()" onmouseover="x()">texto</div>', ["onclick", "onmouseover"]),
        ('<body onload="x()"><p>t</p></body>', ["onload"]),
        ('<iframe src="https://evil.example"></iframe>', ["<iframe"]),
        ('<object data="x.swf"></object><embed src="y">', ["<object", "<embed"]),
        ('<form action="https://evil.example"><input name="senha"></form>', ["<form", "<input"]),
        ("<svg><script>alert(1)</script></svg>", ["<script", "alert"]),
        ('<style>body{background:url("javascript:x")}</style><p>t</p>', ["<style", "javascript"]),
        ('<meta http-equiv="refresh" content="0;url=https://evil.example">', ["<meta", "refresh"]),
        ('<p style="background-image:url(javascript:alert(1))">t</p>', ["javascript"]),
        ('<base href="https://evil.example/">', ["<base"]),
    ],
)
def test_dangerous_html_is_removed(html: str, forbidden: list[str]) -> None:
    cleaned = sanitize_html(html).lower()
    for needle in forbidden:
        assert needle not in cleaned


def test_harmless_markup_and_text_survive() -> None:
    cleaned = sanitize_html(
        '<p>Razão <b>Social</b></p><table><tr><td>CNPJ</td></tr></table><a href="https://boavista.example">site</a>'
    )
    assert "<b>Social</b>" in cleaned
    assert "<td>CNPJ</td>" in cleaned
    assert 'href="https://boavista.example"' in cleaned
    assert 'rel="noopener noreferrer"' in cleaned


def test_sanitizer_handles_surrogates_and_nul() -> None:
    assert sanitize_html("<p>a\x00b\udcff</p>").startswith("<p>")


def test_parsed_message_html_safe_is_sanitized() -> None:
    html = '<p onclick="x()">Olá</p><script>alert(1)</script><a href="javascript:void(0)">x</a>'
    parsed = parse_message(mail("From: a@b.example\nContent-Type: text/html; charset=utf-8", html))
    assert parsed.html_safe is not None
    assert "Olá" in parsed.html_safe
    for needle in ("onclick", "<script", "javascript:"):
        assert needle not in parsed.html_safe
    assert "alert" not in parsed.text


def test_deeply_nested_markup_is_capped_before_sanitizing() -> None:
    # nh3's parser is quadratic on deep nesting; lxml's depth cap must come first.
    cleaned = sanitize_html("<div>" * 5000 + "fundo")
    assert 0 < cleaned.count("<div>") <= 256
