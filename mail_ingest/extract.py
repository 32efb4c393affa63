"""Customer data (razão social, CNPJ, establishment codes, contact) from a parsed integrator mail.

Sources, in order of precedence for single-valued fields: each message's plain-text "Label: value"
lines, its HTML tables, its CSV/TXT attachments, its subject; then the same for every forwarded
message. Establishment codes are gathered from every source, first appearance first.
"""

from __future__ import annotations

import csv
import io
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from stdnum.br import cnpj as cnpj_rules

from mail_ingest.charsets import decode_bytes, single_line
from mail_ingest.labels import Field, fold, label_alone, match_label
from mail_ingest.parse import Attachment, ParsedMessage

# Bounds that keep hostile input linear: customer data sits in the first lines of a mail.
MAX_TEXT_CHARS = 500_000
MAX_LINES = 5000
MAX_LINE_CHARS = 1000
MAX_VALUE_CHARS = 500
MAX_ATTACHMENT_BYTES = 2 * 1024 * 1024
MAX_CSV_ROWS = 5000
_MAX_NAME_LENGTH = 200

_QUOTE_PREFIX = re.compile(r"^(?:[ \t]*>)+[ \t]?")
_CNPJ_SHAPE = re.compile(
    r"(?<![0-9A-Za-z])[0-9A-Z]{2}[.\s]?[0-9A-Z]{3}[.\s]?[0-9A-Z]{3}[/\s]?[0-9A-Z]{4}[-.\s–]?\d{2}(?![0-9A-Za-z])"
)
_FORMATTED_CNPJ = re.compile(r"\d{2}\.\d{3}\.\d{3}/\d{4}-?\d{2}|\d{8}/\d{4}-?\d{2}")
_DATE = re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b")
_PHONE_SHAPE = re.compile(r"(?:\+?55\s*)?(?:\(\d{2}\)\s*)?\b\d{4,5}-\d{4}\b")
_CODE = re.compile(r"(?<![\w])\d{4,20}(?![\w])")
_CODE_ONLY_LINE = re.compile(r"^(?:[\s,;/|\-–•*.]|\be\b|\d)+$")
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_PHONE = re.compile(r"\+?\(?\d[\d\s().\-]{6,}\d")
_TRIM = " \t-–—:;,.|"
_CSV_TYPES = frozenset({"text/csv", "text/plain", "text/tab-separated-values", "application/csv"})
_CSV_EXTENSIONS = (".csv", ".txt", ".tsv")
_ONBOARDING_WORDS = re.compile(
    r"integra(?:cao|coes|r|da|do)\b|e-?\s?extrato|contrata(?:cao|do|da|ram|r)\b|contratou|concilia(?:cao|dor)"
    r"|novos?\s+client|nova\s+adesao|adesao"
)
# Fields that decide the ``missing`` list and the ``incomplete_data`` flag.
REQUIRED = ("cnpj", "establishment_codes", "company_name", "contact")


@dataclass(frozen=True)
class CustomerData:
    company_name: str | None = None
    trade_name: str | None = None
    cnpj: str | None = None
    invalid_cnpj: str | None = None
    establishment_codes: tuple[str, ...] = ()
    contact_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    missing: tuple[str, ...] = field(default=REQUIRED)


def extract_customer(parsed: ParsedMessage) -> CustomerData:
    """The customer data found anywhere in ``parsed`` (never raises on any parsed message)."""
    return _scan(parsed).result()


def looks_like_onboarding(parsed: ParsedMessage) -> bool:
    """True when the mail reads as an integration/contract notice naming a CNPJ or establishment.

    Both are needed: a word such as integração, E-extrato, contratação, conciliação or "novo
    cliente", and a CNPJ or establishment-code label (in text, a table or a CSV attachment).
    """
    collector = _scan(parsed)
    if not collector.labels_seen & {Field.CNPJ, Field.ESTABLISHMENT_CODES}:
        return False
    return any(_ONBOARDING_WORDS.search(fold(chunk[:MAX_TEXT_CHARS])) for chunk in _prose(parsed))


# -- scanning -------------------------------------------------------------------------------------


class _Collector:
    def __init__(self) -> None:
        self.values: dict[Field, list[str]] = {}
        self.codes: dict[str, None] = {}
        self.cnpj_candidates: list[str] = []
        self.labels_seen: set[Field] = set()

    def add(self, field_: Field, value: str) -> None:
        self.labels_seen.add(field_)
        if field_ is Field.ESTABLISHMENT_CODES:
            value = value[: MAX_VALUE_CHARS * 20]  # one code per line or cell
        else:
            value = single_line(value[:MAX_VALUE_CHARS])
        if not value.strip(_TRIM):
            return
        if field_ is Field.ESTABLISHMENT_CODES:
            self.codes.update(dict.fromkeys(codes_in(value)))
        elif field_ is Field.CNPJ:
            self.cnpj_candidates.append(value)
        elif field_ is Field.CONTACT_NAME:
            self._add_contact(value)
        elif field_ is Field.CONTACT_EMAIL:
            email = _EMAIL.search(value)
            if email:
                self._append(Field.CONTACT_EMAIL, email.group(0).lower())
        elif field_ is Field.CONTACT_PHONE:
            self._add_phone(value)
        else:
            self._append(field_, value.strip(_TRIM)[:_MAX_NAME_LENGTH])

    def _append(self, field_: Field, value: str) -> None:
        self.values.setdefault(field_, []).append(value)

    def _add_phone(self, value: str) -> bool:
        for found in _PHONE.finditer(value):
            digits = re.sub(r"\D", "", found.group(0))
            if 8 <= len(digits) <= 13:
                self._append(Field.CONTACT_PHONE, single_line(found.group(0)))
                return True
        return False

    def _add_contact(self, value: str) -> None:
        rest = value
        email = _EMAIL.search(rest)
        if email:
            self._append(Field.CONTACT_EMAIL, email.group(0).lower())
            rest = rest.replace(email.group(0), " ")
        for found in _PHONE.finditer(rest):
            if self._add_phone(found.group(0)):
                rest = rest.replace(found.group(0), " ")
                break
        name = re.sub(r"[()<>\[\]]", " ", rest)
        name = single_line(re.sub(r"\s[-–—/|,]\s|\s[-–—/|,]$", " ", name)).strip(_TRIM)
        if re.search(r"[^\W\d_]", name):
            self._append(Field.CONTACT_NAME, name[:_MAX_NAME_LENGTH])

    def result(self) -> CustomerData:
        first = {f: values[0] for f, values in self.values.items() if values}
        valid, invalid = _pick_cnpj(self.cnpj_candidates)
        codes = tuple(self.codes)
        contact_found = bool(first.get(Field.CONTACT_EMAIL) or first.get(Field.CONTACT_PHONE))
        present = {
            "cnpj": bool(valid),
            "establishment_codes": bool(codes),
            "company_name": bool(first.get(Field.COMPANY_NAME)),
            "contact": contact_found,
        }
        return CustomerData(
            company_name=first.get(Field.COMPANY_NAME),
            trade_name=first.get(Field.TRADE_NAME),
            cnpj=valid,
            invalid_cnpj=invalid if valid is None else None,
            establishment_codes=codes,
            contact_name=first.get(Field.CONTACT_NAME),
            contact_email=first.get(Field.CONTACT_EMAIL),
            contact_phone=first.get(Field.CONTACT_PHONE),
            missing=tuple(name for name in REQUIRED if not present[name]),
        )


# The caller usually asks both extract_customer and looks_like_onboarding about one message:
# scan it once. Keyed by id() and checked through a weak reference, so no stale hit is possible.
_SCANS: dict[int, tuple[weakref.ref[ParsedMessage], _Collector]] = {}


def _scan(parsed: ParsedMessage) -> _Collector:
    cached = _SCANS.get(id(parsed))
    if cached is not None and cached[0]() is parsed:
        return cached[1]
    collector = _scan_uncached(parsed)
    try:
        key = id(parsed)
        ref = weakref.ref(parsed, lambda _ref: _SCANS.pop(key, None))
    except TypeError:
        return collector
    _SCANS[key] = (ref, collector)
    return collector


def _scan_uncached(parsed: ParsedMessage) -> _Collector:
    collector = _Collector()
    for message in parsed.walk():
        scan_text(collector, message.text)
        for table in message.tables:
            scan_rows(collector, table)
        for attachment in message.attachments:
            _scan_attachment(collector, attachment)
        for segment in re.split(r"\s[-–|]\s|\s*[|;]\s*", message.subject):
            for found in match_label(segment):
                collector.add(found.field, found.value)
    return collector


def scan_text(collector: _Collector, text: str) -> None:
    """Feed "Label: value" lines (and tab-separated blocks) of ``text`` to ``collector``."""
    lines = [
        _QUOTE_PREFIX.sub("", line[:MAX_LINE_CHARS]) for line in text[:MAX_TEXT_CHARS].split("\n")[:MAX_LINES]
    ]
    index = 0
    while index < len(lines):
        line = lines[index]
        if "\t" in line.strip():
            block_end = index
            while block_end < len(lines) and "\t" in lines[block_end].strip():
                block_end += 1
            scan_rows(
                collector, [tuple(c.strip() for c in row.split("\t")) for row in lines[index:block_end]]
            )
            index = block_end
            continue
        index = _scan_line(collector, lines, index)


def _scan_line(collector: _Collector, lines: Sequence[str], index: int) -> int:
    """Handle ``lines[index]``; return the index of the next line not consumed."""
    matches = match_label(lines[index])
    index += 1
    for found in matches:
        value = found.value
        if found.field is Field.ESTABLISHMENT_CODES:
            continuation = []
            while index < len(lines) and _is_code_line(lines[index]):
                continuation.append(lines[index])
                index += 1
            value = "\n".join([value, *continuation])
        elif not value and (found.has_separator or found.field in (Field.CNPJ, Field.CONTACT_EMAIL)):
            nxt = _next_nonblank(lines, index)
            if nxt is not None and not match_label(lines[nxt]):
                value = lines[nxt]
                index = nxt + 1
        collector.add(found.field, value)
    return index


def _is_code_line(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and bool(_CODE_ONLY_LINE.match(fold(stripped))) and bool(codes_in(stripped))


def _next_nonblank(lines: Sequence[str], index: int) -> int | None:
    for candidate in range(index, min(index + 3, len(lines))):
        if lines[candidate].strip():
            return candidate
    return None


def scan_rows(collector: _Collector, rows: Sequence[Sequence[str]]) -> None:
    """A table: a header row maps columns to fields for the rows below it; a row whose label cells
    are each followed by a value is read as label/value pairs."""
    header: dict[int, Field] | None = None
    for row in rows[:MAX_CSV_ROWS]:
        cells = [cell.strip() for cell in row]
        labels = {i: f for i, cell in enumerate(cells) if cell and (f := label_alone(cell)) is not None}
        if labels:
            collector.labels_seen.update(labels.values())
            if _is_header(cells, labels):
                header = labels
                continue
            header = None
        elif header is not None and any(cells[i] for i in header if i < len(cells)):
            for i, field_ in header.items():
                if i < len(cells) and cells[i]:
                    collector.add(field_, cells[i])
            continue
        _scan_label_value_row(collector, cells)


def _is_header(cells: Sequence[str], labels: dict[int, Field]) -> bool:
    """A header row unless every label cell is followed by a value cell."""
    return not all(i + 1 < len(cells) and cells[i + 1] and i + 1 not in labels for i in labels)


def _scan_label_value_row(collector: _Collector, cells: list[str]) -> None:
    i = 0
    while i < len(cells):
        field_ = label_alone(cells[i]) if cells[i] else None
        if field_ is None:
            if cells[i]:
                scan_text(collector, cells[i].replace("\t", " "))
            i += 1
            continue
        end = i + 1  # the cells up to the next label cell belong to this label
        while end < len(cells) and not (cells[end] and label_alone(cells[end]) is not None):
            end += 1
        if field_ is Field.ESTABLISHMENT_CODES:  # possibly one code per cell
            collector.add(field_, "\n".join(cells[i + 1 : end]))
            i = end
            continue
        first = next((k for k in range(i + 1, end) if cells[k]), None)
        collector.add(field_, cells[first] if first is not None else "")
        i = first + 1 if first is not None else end


def _scan_attachment(collector: _Collector, attachment: Attachment) -> None:
    name = attachment.filename.lower()
    if not (name.endswith(_CSV_EXTENSIONS) or attachment.content_type in _CSV_TYPES):
        return
    if attachment.size > MAX_ATTACHMENT_BYTES:
        return
    text = decode_bytes(attachment.payload, None).replace("\r\n", "\n").replace("\r", "\n")
    rows = _csv_rows(text)
    if rows and any(label_alone(cell) for row in rows[:50] for cell in row if cell.strip()):
        scan_rows(collector, rows)
    else:
        scan_text(collector, text)


def _csv_rows(text: str) -> list[tuple[str, ...]] | None:
    first = next((line for line in text.split("\n") if line.strip()), "")
    counts = {sep: first.count(sep) for sep in (";", "\t", ",")}
    delimiter = max(counts, key=lambda sep: counts[sep])
    if counts[delimiter] == 0 or ":" in first.split(delimiter, 1)[0]:
        return None  # not delimited, or "Label: value" lines that happen to contain commas
    try:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        rows = []
        for row in reader:
            rows.append(tuple(row))
            if len(rows) >= MAX_CSV_ROWS:
                break
        return rows
    except csv.Error:
        return None


def _prose(parsed: ParsedMessage) -> Iterable[str]:
    for message in parsed.walk():
        yield message.subject
        yield message.text
        for table in message.tables:
            for row in table:
                yield " ".join(row)
        for attachment in message.attachments:
            yield attachment.filename


# -- values ---------------------------------------------------------------------------------------


def codes_in(value: str) -> list[str]:
    """Establishment codes (4 to 20 digits) in a value; CNPJs, dates and phones are not codes."""
    cleaned = _PHONE_SHAPE.sub(" ", _DATE.sub(" ", _FORMATTED_CNPJ.sub(" ", value)))
    return list(dict.fromkeys(_CODE.findall(cleaned)))


def _pick_cnpj(candidates: Sequence[str]) -> tuple[str | None, str | None]:
    """(first valid CNPJ, compact; first invalid one as written) among labelled values."""
    invalid: str | None = None
    for value in candidates:
        shapes = [m.group(0) for m in _CNPJ_SHAPE.finditer(value.upper())]
        for shape in shapes:
            if cnpj_rules.is_valid(shape):
                return cnpj_rules.compact(shape), None
        if invalid is None and (shapes or re.search(r"\d{5}", re.sub(r"[.\-/\s]", "", value))):
            invalid = (shapes[0] if shapes else value).strip(_TRIM)[:40]
    return None, invalid
