"""Recognizing "Label: value" pairs of customer data in pt-BR mail text and table cells.

Matching happens on a *folded* copy of the text (lower case, accents stripped, one character per
character) so that offsets found there cut the original text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum


class Field(StrEnum):
    COMPANY_NAME = "company_name"
    TRADE_NAME = "trade_name"
    CNPJ = "cnpj"
    ESTABLISHMENT_CODES = "establishment_codes"
    CONTACT_NAME = "contact_name"
    CONTACT_EMAIL = "contact_email"
    CONTACT_PHONE = "contact_phone"


class _Mode(StrEnum):
    STRICT = "strict"  # value after ':' '=' or a tab only (generic words such as "Cliente")
    SEP = "sep"  # value after ':' '=' '-' or a tab
    BARE = "bare"  # as SEP, or after plain spaces when the value starts with a digit, '(' or '+'


_CODE_WORD = r"(?:codigos?|cods?\.?|numeros?|nums?\.?|n[o°]\.?)"
_PATTERNS: tuple[tuple[Field, str, _Mode], ...] = (
    (Field.COMPANY_NAME, r"razao\s+social(?:\s+d[oa]\s+(?:cliente|empresa|farmacia))?", _Mode.SEP),
    (Field.COMPANY_NAME, r"nome\s+empresarial|nome\s+d[oa]\s+(?:empresa|cliente|farmacia)", _Mode.SEP),
    (Field.COMPANY_NAME, r"empresa|cliente|farmacia", _Mode.STRICT),
    (Field.TRADE_NAME, r"nome\s+fantasia", _Mode.SEP),
    (Field.TRADE_NAME, r"fantasia", _Mode.STRICT),
    (
        Field.CNPJ,
        r"c\.?\s?n\.?\s?p\.?\s?j\.?(?:\s*/\s*mf)?"
        r"(?:\s+d[oa]\s+(?:cliente|empresa|matriz|farmacia|loja|estabelecimento))?"
        r"(?:\s+(?:correto|corrigido|atualizado|certo|completo))?",
        _Mode.BARE,
    ),
    (
        Field.ESTABLISHMENT_CODES,
        _CODE_WORD + r"\s*(?:d[oae]s?\s+)?(?:estabelecimentos?|ecs?)(?:\s+comerci(?:al|ais))?",
        _Mode.BARE,
    ),
    (Field.ESTABLISHMENT_CODES, r"ecs?", _Mode.BARE),
    (Field.ESTABLISHMENT_CODES, r"estabelecimentos?(?:\s+comerci(?:al|ais))?", _Mode.SEP),
    (Field.ESTABLISHMENT_CODES, r"(?:" + _CODE_WORD + r"\s*(?:de\s+)?)?(?:filiacao|afiliacao)", _Mode.SEP),
    (
        Field.CONTACT_NAME,
        r"(?:nome\s+d[oa]\s+)?(?:contato|responsavel)"
        r"(?:\s+(?:d[oa]\s+cliente|na\s+(?:farmacia|empresa)|responsavel))?"
        r"|pessoa\s+(?:de|para)\s+contato",
        _Mode.SEP,
    ),
    (
        Field.CONTACT_EMAIL,
        r"e-?\s?mails?(?:\s+(?:d[oa]|de|para)\s+(?:contato|responsavel|cliente|empresa))?"
        r"|correio\s+eletronico",
        _Mode.SEP,
    ),
    (
        Field.CONTACT_PHONE,
        r"(?:tele)?fones?(?:\s+(?:d[oa]|de|para)\s+(?:contato|responsavel|cliente|empresa))?"
        r"|tel\.?|cel(?:ular)?\.?|whats\s?app|contato\s+telefonico",
        _Mode.BARE,
    ),
)

MAX_LINE_CHARS = 1000
_PREFIX = r"^[\s>*•·\-–—]*"
_LABEL_END = r"(?![a-z0-9])[ \t]*(?:\([a-z \t/.,;-]{1,40}\)[ \t]*)?(?:n[o°]\.?[ \t]*)?"
_SEPARATOR = {
    _Mode.STRICT: r"[ \t]*(?:[:=]+|\t)[ \t]*",
    _Mode.SEP: r"[ \t]*(?:[:=\-–—]+|\t)[ \t]*",
    _Mode.BARE: r"[ \t]*(?:[:=\-–—]+|\t)[ \t]*|[ \t]+(?=[\d(+])",
}


@dataclass(frozen=True)
class _Label:
    field: Field
    with_value: re.Pattern[str]  # label, separator, value
    alone: re.Pattern[str]  # the whole string is the label (optionally a trailing separator)


_LABELS = tuple(
    _Label(
        field=field,
        with_value=re.compile(_PREFIX + f"(?:{pattern}){_LABEL_END}(?:{_SEPARATOR[mode]})"),
        alone=re.compile(_PREFIX + f"(?:{pattern}){_LABEL_END}[ \t]*[:=\\-–—]*[ \t]*$"),
    )
    for field, pattern, mode in _PATTERNS
)
_ANY_LABEL = "|".join(f"(?:{pattern})" for _, pattern, _ in _PATTERNS)
_STARTS_WITH_LABEL = re.compile(_PREFIX + f"(?:{_ANY_LABEL})(?![a-z0-9])")
# A second "Label: value" further along one line ("Razão social: X   CNPJ: Y").
_MIDLINE_LABEL = re.compile(f"(?<=[\\s|;,])(?:{_ANY_LABEL}){_LABEL_END}[ \t]*[:=]")


class _FoldTable(dict[int, str]):
    """``str.translate`` table filled on first sight of each character."""

    def __missing__(self, codepoint: int) -> str:
        ch = chr(codepoint)
        base = unicodedata.normalize("NFKD", ch)[:1] or ch
        folded = base.lower()[:1] or base
        self[codepoint] = folded
        return folded


_FOLD_TABLE = _FoldTable()


def fold(text: str) -> str:
    """Lower case without accents, with exactly one output character per input character."""
    if text.isascii():
        return text.lower()
    return text.translate(_FOLD_TABLE)


@dataclass(frozen=True)
class LabelMatch:
    field: Field
    value: str
    has_separator: bool


def match_label(line: str) -> list[LabelMatch]:
    """The label/value pairs on one line: empty when the line does not start with a label.

    A label alone (``"CNPJ:"``) yields one match with an empty value; the caller may look for the
    value on the next line. Only the first :data:`MAX_LINE_CHARS` characters are read.
    """
    line = line[:MAX_LINE_CHARS]
    folded = fold(line)
    matches: list[LabelMatch] = []
    while _STARTS_WITH_LABEL.match(folded):
        alone = label_alone(line, folded)
        if alone is not None:
            matches.append(LabelMatch(alone, "", folded.rstrip().endswith((":", "=", "-", "–", "—"))))
            break
        best: tuple[int, Field] | None = None
        for label in _LABELS:
            found = label.with_value.match(folded)
            if found and (best is None or found.end() > best[0]):
                best = (found.end(), label.field)
        if best is None:
            break
        end, field = best
        cut = _MIDLINE_LABEL.search(folded, end)
        value_end = cut.start() if cut else len(line)
        matches.append(LabelMatch(field, line[end:value_end].strip(), True))
        if cut is None:
            break
        line, folded = line[value_end:], folded[value_end:]
    return matches


def label_alone(text: str, folded: str | None = None) -> Field | None:
    """The field when ``text`` is nothing but a label (a table header or label cell)."""
    folded = fold(text) if folded is None else folded
    if len(folded) > 80 or not _STARTS_WITH_LABEL.match(folded):
        return None
    best: tuple[int, Field] | None = None
    for label in _LABELS:
        found = label.alone.match(folded)
        if found and (best is None or found.end() > best[0]):
            best = (found.end(), label.field)
    return best[1] if best else None
