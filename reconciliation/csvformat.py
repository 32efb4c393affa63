"""Streaming CSV readers and writers for the ERP receipts, the retorno and the result files.

Readers (SPEC sections 6 and 7):
- the encoding is sniffed from the first 64 KiB: a UTF-8 BOM (or UTF-16 BOM), else UTF-8 when those
  bytes decode as UTF-8, else Windows-1252. A UTF-8 file whose later lines carry stray
  Windows-1252 bytes still decodes: each undecodable byte is read as Windows-1252;
- the dialect comes from the header line: `;` with decimal comma and optional `.` thousands, or
  `,` with `.` decimals and no thousands separator;
- the header is read and checked when the reader is created: a missing required column raises
  `FormatError` before any row; columns may come in any order, unknown columns are ignored;
- each data row yields `(line, record)` or `(line, RowError)`; `line` is the physical line where
  the row starts (the header is line 1). A bad row never stops the next one. Blank lines are
  skipped.

The file is never read whole: the binary stream is wrapped, not copied.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from typing import IO, Any, TypeVar

from reconciliation.matcher import ResultRow
from reconciliation.records import (
    EventType,
    Origin,
    PaymentType,
    Receipt,
    StatementRow,
    business_tz,
    parse_payment_type,
)

SNIFF_BYTES = 65536

RECEIPT_COLUMNS = (
    "sale_id",
    "establishment_code",
    "sale_datetime",
    "amount",
    "payment_type",
    "brand",
    "acquirer",
    "installments",
    "authorization_code",
    "nsu",
    "origin",
)
RECEIPT_OPTIONAL_COLUMNS = ("tid", "txid", "terminal", "cnpj")

STATEMENT_COLUMNS = (
    "record_id",
    "establishment_code",
    "acquirer",
    "brand",
    "payment_type",
    "sale_date",
    "authorization_code",
    "nsu",
    "installments",
    "installment_number",
    "sale_amount",
    "gross_amount",
    "fee_amount",
    "net_amount",
    "expected_payment_date",
    "event_type",
)
STATEMENT_OPTIONAL_COLUMNS = ("sale_time", "tid", "txid")
# Order used when writing a retorno.
STATEMENT_WRITE_COLUMNS = (
    "record_id",
    "establishment_code",
    "acquirer",
    "brand",
    "payment_type",
    "sale_date",
    "sale_time",
    "authorization_code",
    "nsu",
    "tid",
    "txid",
    "installments",
    "installment_number",
    "sale_amount",
    "gross_amount",
    "fee_amount",
    "net_amount",
    "expected_payment_date",
    "event_type",
)
RESULT_COLUMNS = ("kind", "id", "status", "divergences", "counterpart_ids", "rule")


class FormatError(ValueError):
    """The file as a whole cannot be read (encoding, header, missing columns)."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One data row that could not be read; `reason` names the column (pt-BR)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"linha {self.line}: {self.reason}"


class _CellError(ValueError):
    """A cell that does not parse; carries the column for the row error."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"coluna '{column}': {message}")


# --- decoding ------------------------------------------------------------------------------------


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start : error.end]
    return bad.decode("cp1252", errors="replace"), error.end


_FALLBACK_ERRORS = "eextrato-cp1252-fallback"
codecs.register_error(_FALLBACK_ERRORS, _cp1252_fallback)


class _Borrowed(io.RawIOBase):
    """Reads the caller's binary stream without ever closing it."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


def _sniff_encoding(head: bytes) -> tuple[str, str]:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", _FALLBACK_ERRORS
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "strict"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the sniffed block is still UTF-8.
        if not (exc.reason == "unexpected end of data" and exc.start >= len(head) - 3):
            return "cp1252", "replace"
    return "utf-8", _FALLBACK_ERRORS


@dataclass(frozen=True, slots=True)
class Dialect:
    delimiter: str
    decimal: str


COMMA = Dialect(",", ".")
SEMICOLON = Dialect(";", ",")


class _CsvSource:
    """An opened CSV: encoding, dialect, header positions and the raw record iterator."""

    def __init__(self, stream: IO[bytes]) -> None:
        if isinstance(stream, io.TextIOBase):
            raise TypeError("esperado um fluxo binário: abra o arquivo com 'rb'")
        buffered = io.BufferedReader(_Borrowed(stream), buffer_size=SNIFF_BYTES)
        self.encoding, errors = _sniff_encoding(buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES])
        self.text = io.TextIOWrapper(buffered, encoding=self.encoding, errors=errors, newline="")
        try:
            header_line = self.text.readline()
        except UnicodeDecodeError as exc:
            raise FormatError(f"codificação não reconhecida: {exc}") from None
        if not header_line.strip():
            raise FormatError("arquivo vazio: falta a linha de cabeçalho")
        self.dialect = SEMICOLON if header_line.count(";") > header_line.count(",") else COMMA
        header = next(csv.reader([header_line], delimiter=self.dialect.delimiter))
        self.columns = [_header_name(h) for h in header]
        seen: set[str] = set()
        for name in self.columns:
            if name and name in seen:
                raise FormatError(f"coluna '{name}' repetida no cabeçalho")
            seen.add(name)
        self.position = {name: i for i, name in enumerate(self.columns) if name}
        self.reader = csv.reader(self.text, delimiter=self.dialect.delimiter)

    def require(self, required: Iterable[str]) -> None:
        missing = [c for c in required if c not in self.position]
        if missing:
            found = ", ".join(c for c in self.columns if c) or "nenhuma"
            raise FormatError(
                f"coluna(s) obrigatória(s) ausente(s) no cabeçalho: {', '.join(missing)} "
                f"(encontradas: {found})"
            )

    def records(self) -> Iterator[tuple[int, list[str] | RowError]]:
        """(start line, fields) per non-blank record; a malformed record becomes a RowError."""
        reader = self.reader
        width = len(self.columns)
        last = 1  # the header
        while True:
            start = last + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                last = max(reader.line_num + 1, start)
                yield start, RowError(start, f"CSV inválido: {exc}")
                continue
            except UnicodeDecodeError as exc:
                yield start, RowError(start, f"codificação inválida: {exc}")
                return
            last = reader.line_num + 1
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != width:
                if len(fields) > width and not any(f.strip() for f in fields[width:]):
                    fields = fields[:width]
                else:
                    end = last
                    where = f"linhas {start}-{end}" if end > start else f"linha {start}"
                    yield (
                        start,
                        RowError(
                            start,
                            f"{len(fields)} colunas em vez de {width} ({where}; separador "
                            f"'{self.dialect.delimiter}' ou aspas não fechadas?)",
                        ),
                    )
                    continue
            yield start, fields


def _header_name(raw: str) -> str:
    return raw.replace("\ufeff", "").strip().strip('"').strip().lower()


# --- cell parsers --------------------------------------------------------------------------------

_AMOUNT_DOT = re.compile(r"(-?)(\d+)(?:\.(\d{1,2}))?")
_AMOUNT_COMMA = re.compile(r"(-?)(\d{1,3}(?:\.\d{3})+|\d+)(?:,(\d{1,2}))?")
_BR_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_BR_DATETIME = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def parse_amount(text: str, dialect: Dialect, column: str) -> int:
    """Money as integer cents: '1234.56' (`,` dialect) or '1.234,56' (`;` dialect)."""
    value = text.strip()
    if value.startswith("R$"):
        value = value[2:].strip()
    if not value:
        raise _CellError(column, "valor obrigatório")
    m = (_AMOUNT_COMMA if dialect is SEMICOLON else _AMOUNT_DOT).fullmatch(value)
    if m is None:
        example = "1.234,56" if dialect is SEMICOLON else "1234.56"
        raise _CellError(column, f"valor monetário inválido {text!r} (esperado como {example})")
    sign, units, cents = m.groups()
    total = int(units.replace(".", "")) * 100 + (int(cents.ljust(2, "0")) if cents else 0)
    return -total if sign else total


def parse_date(text: str, column: str) -> date:
    """`YYYY-MM-DD` or `DD/MM/YYYY`."""
    value = text.strip()
    try:
        if "/" in value:
            m = _BR_DATE.fullmatch(value)
            if m is None:
                raise ValueError
            return date(int(m[3]), int(m[2]), int(m[1]))
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        if not value:
            raise _CellError(column, "data obrigatória") from None
        raise _CellError(column, f"data inválida {text!r} (esperado AAAA-MM-DD ou DD/MM/AAAA)") from None


def parse_datetime(text: str, tz: tzinfo, column: str) -> datetime:
    """`YYYY-MM-DDTHH:MM:SS` or `DD/MM/YYYY HH:MM:SS` in the business time zone."""
    value = text.strip()
    try:
        if "/" in value:
            m = _BR_DATETIME.fullmatch(value)
            if m is None:
                raise ValueError
            dt = datetime(int(m[3]), int(m[2]), int(m[1]), int(m[4]), int(m[5]), int(m[6] or 0))
        else:
            if _ISO_DATETIME.fullmatch(value) is None:
                raise ValueError
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        if not value:
            raise _CellError(column, "data e hora obrigatórias") from None
        raise _CellError(
            column,
            f"data e hora inválidas {text!r} (esperado AAAA-MM-DDTHH:MM:SS ou DD/MM/AAAA HH:MM:SS)",
        ) from None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=tz)
    return dt.astimezone(tz)


def parse_time(text: str, column: str) -> time | None:
    """`HH:MM:SS` (or `HH:MM`); empty -> None."""
    value = text.strip()
    if not value:
        return None
    m = _TIME.fullmatch(value)
    try:
        if m is None:
            raise ValueError
        return time(int(m[1]), int(m[2]), int(m[3] or 0))
    except ValueError:
        raise _CellError(column, f"horário inválido {text!r} (esperado HH:MM:SS)") from None


def parse_int(text: str, column: str, default: int | None = None, minimum: int = 1) -> int:
    value = text.strip()
    if not value and default is not None:
        return default
    if not value.isdigit():
        raise _CellError(column, f"número inteiro inválido {text!r}")
    number = int(value)
    if number < minimum:
        raise _CellError(column, f"deve ser >= {minimum}, recebido {number}")
    return number


_E = TypeVar("_E", Origin, EventType)


def _parse_enum(cls: type[_E], text: str, column: str) -> _E:
    value = text.strip().lower()
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        if not value:
            raise _CellError(column, f"valor obrigatório ({allowed})") from None
        raise _CellError(column, f"valor inválido {text!r} (esperado: {allowed})") from None


def _payment_type(text: str) -> PaymentType:
    try:
        return parse_payment_type(text)
    except ValueError as exc:
        raise _CellError("payment_type", str(exc)) from None


def _required(text: str, column: str) -> str:
    value = text.strip()
    if not value:
        raise _CellError(column, "valor obrigatório")
    return value


# --- readers -------------------------------------------------------------------------------------

T = TypeVar("T")


def _rows(
    source: _CsvSource, build: Callable[[Callable[[str], str]], T]
) -> Iterator[tuple[int, T | RowError]]:
    position = source.position
    for line, fields in source.records():
        if isinstance(fields, RowError):
            yield line, fields
            continue

        def cell(name: str, fields: list[str] = fields) -> str:
            i = position.get(name)
            return fields[i] if i is not None else ""

        try:
            yield line, build(cell)
        except _CellError as exc:
            yield line, RowError(line, str(exc))
        except ValueError as exc:  # record-level rules (records.py) name their column
            yield line, RowError(line, str(exc))


def read_receipts(stream: IO[bytes], tz: tzinfo | None = None) -> Iterator[tuple[int, Receipt | RowError]]:
    """ERP card receipts CSV (SPEC section 6) -> (line, Receipt | RowError), streamed.

    Raises `FormatError` at once when the header lacks a required column.
    """
    zone = tz or business_tz()
    source = _CsvSource(stream)
    source.require(RECEIPT_COLUMNS)
    dialect = source.dialect

    def build(cell: Callable[[str], str]) -> Receipt:
        payment_type = _payment_type(cell("payment_type"))
        brand = cell("brand").strip()
        if not brand and payment_type is PaymentType.PIX:
            brand = "pix"
        return Receipt(
            sale_id=_required(cell("sale_id"), "sale_id"),
            establishment_code=_required(cell("establishment_code"), "establishment_code"),
            sale_datetime=parse_datetime(cell("sale_datetime"), zone, "sale_datetime"),
            amount_cents=_positive(parse_amount(cell("amount"), dialect, "amount"), "amount"),
            payment_type=payment_type,
            brand=_required(brand, "brand"),
            acquirer=_required(cell("acquirer"), "acquirer"),
            installments=parse_int(cell("installments"), "installments", default=1),
            authorization_code=cell("authorization_code"),
            nsu=cell("nsu"),
            origin=_parse_enum(Origin, cell("origin"), "origin"),
            tid=cell("tid"),
            txid=cell("txid"),
            terminal=cell("terminal"),
            cnpj=cell("cnpj"),
        )

    return _rows(source, build)


def read_statement(stream: IO[bytes]) -> Iterator[tuple[int, StatementRow | RowError]]:
    """Integrator retorno CSV (SPEC section 7) -> (line, StatementRow | RowError), streamed.

    Raises `FormatError` at once when the header lacks a required column. Rows repeating a
    record_id are yielded too: dropping the ones already stored is the importer's job.
    """
    source = _CsvSource(stream)
    source.require(STATEMENT_COLUMNS)
    dialect = source.dialect

    def build(cell: Callable[[str], str]) -> StatementRow:
        installments = parse_int(cell("installments"), "installments", default=1)
        number = parse_int(cell("installment_number"), "installment_number", default=1)
        if number > installments:
            raise _CellError(
                "installment_number", f"parcela {number} maior que o total de parcelas {installments}"
            )
        return StatementRow(
            record_id=_required(cell("record_id"), "record_id"),
            establishment_code=_required(cell("establishment_code"), "establishment_code"),
            acquirer=_required(cell("acquirer"), "acquirer"),
            brand=_required(cell("brand"), "brand"),
            payment_type=_payment_type(cell("payment_type")),
            sale_date=parse_date(cell("sale_date"), "sale_date"),
            sale_time=parse_time(cell("sale_time"), "sale_time"),
            authorization_code=cell("authorization_code"),
            nsu=cell("nsu"),
            tid=cell("tid"),
            txid=cell("txid"),
            installments=installments,
            installment_number=number,
            sale_amount_cents=_positive(
                parse_amount(cell("sale_amount"), dialect, "sale_amount"), "sale_amount"
            ),
            gross_amount_cents=parse_amount(cell("gross_amount"), dialect, "gross_amount"),
            fee_amount_cents=parse_amount(cell("fee_amount"), dialect, "fee_amount"),
            net_amount_cents=parse_amount(cell("net_amount"), dialect, "net_amount"),
            expected_payment_date=parse_date(cell("expected_payment_date"), "expected_payment_date"),
            event_type=_parse_enum(EventType, cell("event_type"), "event_type"),
        )

    return _rows(source, build)


def _positive(cents: int, column: str) -> int:
    if cents <= 0:
        raise _CellError(column, "deve ser maior que zero")
    return cents


# --- writers -------------------------------------------------------------------------------------


def format_amount(cents: int, dialect: Dialect = COMMA) -> str:
    """Integer cents as the dialect writes them: '1234.56' or '1.234,56'."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    if dialect is SEMICOLON:
        return f"{sign}{units:,}".replace(",", ".") + f",{rest:02d}"
    return f"{sign}{units}.{rest:02d}"


def _dialect_for(delimiter: str) -> Dialect:
    if delimiter == ",":
        return COMMA
    if delimiter == ";":
        return SEMICOLON
    raise ValueError("delimiter deve ser ',' ou ';'")


def write_receipts_csv(
    receipts: Iterable[Receipt],
    stream: IO[str],
    *,
    delimiter: str = ",",
    br_dates: bool | None = None,
    tz: tzinfo | None = None,
) -> int:
    """Write receipts as an ERP export (SPEC section 6); returns the number of rows written.

    `delimiter=';'` writes decimal commas with `.` thousands; `br_dates` (default: same as the
    `;` dialect) writes `DD/MM/YYYY HH:MM:SS` instead of `YYYY-MM-DDTHH:MM:SS`.
    """
    dialect = _dialect_for(delimiter)
    zone = tz or business_tz()
    br = dialect is SEMICOLON if br_dates is None else br_dates
    stamp = "%d/%m/%Y %H:%M:%S" if br else "%Y-%m-%dT%H:%M:%S"
    writer = csv.writer(stream, delimiter=delimiter, lineterminator="\n")
    writer.writerow(RECEIPT_COLUMNS + RECEIPT_OPTIONAL_COLUMNS)
    count = 0
    for r in receipts:
        writer.writerow(
            (
                r.sale_id,
                r.establishment_code,
                r.sale_datetime.astimezone(zone).strftime(stamp),
                format_amount(r.amount_cents, dialect),
                r.payment_type.value,
                r.brand,
                r.acquirer,
                r.installments,
                r.authorization_code or "",
                r.nsu or "",
                r.origin.value,
                r.tid or "",
                r.txid or "",
                r.terminal or "",
                r.cnpj or "",
            )
        )
        count += 1
    return count


def write_remessa(receipts: Iterable[Receipt], stream: IO[str], *, tz: tzinfo | None = None) -> int:
    """The remessa sent to the integrator: the ERP receipts columns, `,` dialect, ISO dates.

    Open `stream` as UTF-8 (and `newline=''` for files).
    """
    return write_receipts_csv(receipts, stream, delimiter=",", br_dates=False, tz=tz)


def write_statement_csv(
    rows: Iterable[StatementRow], stream: IO[str], *, delimiter: str = ",", br_dates: bool | None = None
) -> int:
    """Write retorno rows (SPEC section 7) in either dialect; returns the number of rows written."""
    dialect = _dialect_for(delimiter)
    br = dialect is SEMICOLON if br_dates is None else br_dates
    day = "%d/%m/%Y" if br else "%Y-%m-%d"
    writer = csv.writer(stream, delimiter=delimiter, lineterminator="\n")
    writer.writerow(STATEMENT_WRITE_COLUMNS)
    count = 0
    for r in rows:
        writer.writerow(
            (
                r.record_id,
                r.establishment_code,
                r.acquirer,
                r.brand,
                r.payment_type.value,
                r.sale_date.strftime(day),
                r.sale_time.strftime("%H:%M:%S") if r.sale_time else "",
                r.authorization_code or "",
                r.nsu or "",
                r.tid or "",
                r.txid or "",
                r.installments,
                r.installment_number,
                format_amount(r.sale_amount_cents, dialect),
                format_amount(r.gross_amount_cents, dialect),
                format_amount(r.fee_amount_cents, dialect),
                format_amount(r.net_amount_cents, dialect),
                r.expected_payment_date.strftime(day),
                r.event_type.value,
            )
        )
        count += 1
    return count


def write_result_csv(rows: Iterable[ResultRow], stream: IO[str]) -> int:
    """The result CSV (SPEC section 8): `kind,id,status,divergences,counterpart_ids,rule`, `,`.

    Open `stream` as UTF-8 (and `newline=''` for files). Returns the number of rows written.
    """
    writer = csv.writer(stream, delimiter=",", lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    count = 0
    for o in rows:
        writer.writerow(
            (
                o.kind.value,
                o.id,
                o.status.value,
                "|".join(d.value for d in o.divergences),
                "|".join(o.counterpart_ids),
                o.rule,
            )
        )
        count += 1
    return count
