"""Canonical typed records of the reconciliation engine (SPEC sections 6, 7 and 8).

Every `Receipt` and `StatementRow` is canonical once built, whoever builds it (CSV reader, database
loader, API): `__post_init__` trims text, lower-cases the categorical fields that compare
case-insensitively (brand, acquirer), upper-cases card identifiers, turns empty identifiers into
`None`, coerces enum strings and rejects impossible values with `ValueError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

BUSINESS_TIMEZONE = "America/Sao_Paulo"


@lru_cache(maxsize=16)
def business_tz(name: str | None = None) -> ZoneInfo:
    """The business time zone (`TIMEZONE` setting); America/Sao_Paulo by default."""
    return ZoneInfo(name or BUSINESS_TIMEZONE)


class PaymentType(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"
    VOUCHER = "voucher"
    PIX = "pix"
    WALLET = "wallet"


class Origin(StrEnum):
    SALE = "sale"
    INVOICE_PAYMENT = "invoice_payment"
    OTHER_RECEIPT = "other_receipt"


class EventType(StrEnum):
    SALE = "sale"
    CANCELLATION = "cancellation"
    CHARGEBACK = "chargeback"
    CHARGEBACK_REVERSAL = "chargeback_reversal"
    ADJUSTMENT = "adjustment"


class Status(StrEnum):
    MATCHED = "matched"
    DIVERGENT = "divergent"
    PENDING = "pending"
    NOT_FOUND = "not_found"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    CHARGEBACK = "chargeback"
    MANUAL = "manual"


class Divergence(StrEnum):
    """Declaration order is the output order when divergences are `|`-joined."""

    AMOUNT = "amount"
    INSTALLMENTS = "installments"
    BRAND = "brand"
    PAYMENT_TYPE = "payment_type"
    AUTHORIZATION_CODE = "authorization_code"
    NSU = "nsu"
    DATE = "date"


class Kind(StrEnum):
    """The `kind` column of the result CSV."""

    SALE = "sale"
    STATEMENT = "statement"


# Spellings seen in Brazilian ERP exports, accepted beside the canonical values.
_PAYMENT_TYPE_ALIASES = {
    "credito": PaymentType.CREDIT,
    "crédito": PaymentType.CREDIT,
    "debito": PaymentType.DEBIT,
    "débito": PaymentType.DEBIT,
    "vale": PaymentType.VOUCHER,
    "carteira": PaymentType.WALLET,
    "carteira digital": PaymentType.WALLET,
}


def parse_payment_type(value: str | PaymentType) -> PaymentType:
    if type(value) is PaymentType:
        return value
    text = str(value).strip().lower()
    try:
        return PaymentType(text)
    except ValueError:
        alias = _PAYMENT_TYPE_ALIASES.get(text)
        if alias is None:
            allowed = ", ".join(p.value for p in PaymentType)
            raise ValueError(f"payment_type inválido {value!r} (esperado: {allowed})") from None
        return alias


def _enum(cls: type[StrEnum], value: object, column: str) -> StrEnum:
    if type(value) is cls:
        return value  # type: ignore[return-value]
    text = str(value).strip().lower()
    try:
        return cls(text)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise ValueError(f"{column} inválido {value!r} (esperado: {allowed})") from None


def norm_text(value: str | None, column: str) -> str:
    """Required case-insensitive text (brand, acquirer): trimmed, lower-cased, non-empty."""
    if value is None:
        raise ValueError(f"{column} é obrigatório")
    text = value.strip().lower()
    if not text:
        raise ValueError(f"{column} é obrigatório")
    return text


def norm_code(value: str | None) -> str | None:
    """Optional card identifier (NSU, authorization, TID, terminal): trimmed, upper-cased, '' -> None."""
    if value is None:
        return None
    text = value.strip().upper()
    return text or None


def norm_plain(value: str | None) -> str | None:
    """Optional identifier whose case is kept (txid, CNPJ): trimmed, '' -> None."""
    if value is None:
        return None
    text = value.strip()
    return text or None


def _required_id(value: str | None, column: str) -> str:
    text = norm_plain(value)
    if text is None:
        raise ValueError(f"{column} é obrigatório")
    return text


def _required_code(value: str | None, column: str) -> str:
    text = norm_code(value)
    if text is None:
        raise ValueError(f"{column} é obrigatório")
    return text


def _int(value: object, column: str, minimum: int | None = None) -> int:
    if type(value) is not int:
        raise ValueError(f"{column} deve ser inteiro, recebido {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{column} deve ser >= {minimum}, recebido {value}")
    return value


def _is_date(value: object) -> bool:
    return type(value) is date or (isinstance(value, date) and not isinstance(value, datetime))


# The checks below are inlined on purpose: 600,000 records are built per reconciliation run, and
# the common case (already canonical) must cost a comparison, not a function call per field.
_fix = object.__setattr__


@dataclass(frozen=True, slots=True)
class Receipt:
    """One ERP card receipt ("Recebimento de Cartões / Carteira Digital"), SPEC section 6.

    `corrected_on` is the business date of the last correction, `None` if never corrected.
    """

    sale_id: str
    establishment_code: str
    sale_datetime: datetime
    amount_cents: int
    payment_type: PaymentType
    brand: str
    acquirer: str
    installments: int
    authorization_code: str | None
    nsu: str | None
    origin: Origin
    tid: str | None = None
    txid: str | None = None
    terminal: str | None = None
    cnpj: str | None = None
    corrected_on: date | None = None

    def __post_init__(self) -> None:
        v: Any = self.sale_id
        if type(v) is not str or not v or v != v.strip():
            _fix(self, "sale_id", _required_id(v, "sale_id"))
        v = self.establishment_code
        if type(v) is not str or not v or v != v.strip().upper():
            _fix(self, "establishment_code", _required_code(v, "establishment_code"))
        v = self.sale_datetime
        if not isinstance(v, datetime) or v.tzinfo is None or v.utcoffset() is None:
            raise ValueError(f"sale_datetime deve ter fuso horário, recebido {v!r}")
        v = self.amount_cents
        if type(v) is not int or v < 1:
            _int(v, "amount", minimum=1)
        if type(self.payment_type) is not PaymentType:
            _fix(self, "payment_type", parse_payment_type(self.payment_type))
        v = self.brand
        if type(v) is not str or not v or v != v.strip().lower():
            _fix(self, "brand", norm_text(v, "brand"))
        v = self.acquirer
        if type(v) is not str or not v or v != v.strip().lower():
            _fix(self, "acquirer", norm_text(v, "acquirer"))
        v = self.installments
        if type(v) is not int or v < 1:
            _int(v, "installments", minimum=1)
        for name in ("authorization_code", "nsu", "tid", "terminal"):
            v = getattr(self, name)
            if v is not None and (type(v) is not str or not v or v != v.strip().upper()):
                _fix(self, name, norm_code(v))
        for name in ("txid", "cnpj"):
            v = getattr(self, name)
            if v is not None and (type(v) is not str or not v or v != v.strip()):
                _fix(self, name, norm_plain(v))
        if type(self.origin) is not Origin:
            _fix(self, "origin", _enum(Origin, self.origin, "origin"))
        v = self.corrected_on
        if v is not None and not _is_date(v):
            raise ValueError(f"corrected_on deve ser uma data, recebido {v!r}")

    def local_date(self, tz: tzinfo | None = None) -> date:
        """The sale date in the business time zone."""
        zone = tz or business_tz()
        dt = self.sale_datetime
        return (dt if dt.tzinfo is zone else dt.astimezone(zone)).date()


@dataclass(frozen=True, slots=True)
class StatementRow:
    """One row of the integrator's retorno (one installment or one event), SPEC section 7."""

    record_id: str
    establishment_code: str
    acquirer: str
    brand: str
    payment_type: PaymentType
    sale_date: date
    sale_time: time | None
    authorization_code: str | None
    nsu: str | None
    tid: str | None
    txid: str | None
    installments: int
    installment_number: int
    sale_amount_cents: int
    gross_amount_cents: int
    fee_amount_cents: int
    net_amount_cents: int
    expected_payment_date: date
    event_type: EventType = EventType.SALE

    def __post_init__(self) -> None:
        v: Any = self.record_id
        if type(v) is not str or not v or v != v.strip():
            _fix(self, "record_id", _required_id(v, "record_id"))
        v = self.establishment_code
        if type(v) is not str or not v or v != v.strip().upper():
            _fix(self, "establishment_code", _required_code(v, "establishment_code"))
        v = self.acquirer
        if type(v) is not str or not v or v != v.strip().lower():
            _fix(self, "acquirer", norm_text(v, "acquirer"))
        v = self.brand
        if type(v) is not str or not v or v != v.strip().lower():
            _fix(self, "brand", norm_text(v, "brand"))
        if type(self.payment_type) is not PaymentType:
            _fix(self, "payment_type", parse_payment_type(self.payment_type))
        if not _is_date(self.sale_date):
            raise ValueError(f"sale_date deve ser uma data, recebido {self.sale_date!r}")
        v = self.sale_time
        if v is not None and not isinstance(v, time):
            raise ValueError(f"sale_time deve ser um horário, recebido {v!r}")
        for name in ("authorization_code", "nsu", "tid"):
            v = getattr(self, name)
            if v is not None and (type(v) is not str or not v or v != v.strip().upper()):
                _fix(self, name, norm_code(v))
        v = self.txid
        if v is not None and (type(v) is not str or not v or v != v.strip()):
            _fix(self, "txid", norm_plain(v))
        installments, number = self.installments, self.installment_number
        if type(installments) is not int or installments < 1:
            _int(installments, "installments", minimum=1)
        if type(number) is not int or number < 1:
            _int(number, "installment_number", minimum=1)
        if number > installments:
            raise ValueError(f"installment_number {number} maior que installments {installments}")
        v = self.sale_amount_cents
        if type(v) is not int or v < 1:
            _int(v, "sale_amount", minimum=1)
        if not (
            type(self.gross_amount_cents) is int
            and type(self.fee_amount_cents) is int
            and type(self.net_amount_cents) is int
        ):
            _int(self.gross_amount_cents, "gross_amount")
            _int(self.fee_amount_cents, "fee_amount")
            _int(self.net_amount_cents, "net_amount")
        if not _is_date(self.expected_payment_date):
            raise ValueError(
                f"expected_payment_date deve ser uma data, recebido {self.expected_payment_date!r}"
            )
        if type(self.event_type) is not EventType:
            _fix(self, "event_type", _enum(EventType, self.event_type, "event_type"))


def split_installments(total_cents: int, installments: int) -> list[int]:
    """Installment amounts as the acquirers post them: the first takes the remainder.

    R$ 100,00 in 3x is [3334, 3333, 3333].
    """
    if installments < 1:
        raise ValueError("installments deve ser >= 1")
    sign = -1 if total_cents < 0 else 1
    base, rest = divmod(abs(total_cents), installments)
    return [sign * (base + rest)] + [sign * base] * (installments - 1)


# --- trusted construction ----------------------------------------------------------------------


def trusted_factory(cls: type, mapped: dict[str, str] | None = None) -> Callable[..., Any]:
    """A constructor for already-canonical values: fills the slots without `__post_init__`.

    `mapped` names, per field, a mapping (passed as keyword argument of the same name to the
    factory) that turns the stored value into the record's (enum members, shared strings).
    """
    mapped = mapped or {}
    names = [f.name for f in dataclasses.fields(cls)]
    setters = {f"set_{i}": getattr(cls, name).__set__ for i, name in enumerate(names)}
    lines = []
    for i, name in enumerate(names):
        value = f"values[{i}]"
        if name in mapped:
            value = f"{mapped[name]}[{value}]"
        lines.append(f"        set_{i}(obj, {value})\n")
    params = "".join(f", {m}" for m in sorted(set(mapped.values())))
    source = (
        f"def factory(new=new, cls=cls{params}):\n"
        f"    def make(values):\n        obj = new(cls)\n{''.join(lines)}        return obj\n"
        f"    return make\n"
    )
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls, **setters}
    exec(source.replace("(new=new, cls=cls", "(*, new=new, cls=cls"), namespace)
    return namespace["factory"]


class Interner(dict):
    """Shares one object per repeated value (codes, brands, dates) to keep big loads small."""

    def __missing__(self, key: Any) -> Any:
        self[key] = key
        return key


_RECEIPT_FACTORY = trusted_factory(
    Receipt,
    {
        "establishment_code": "text",
        "brand": "text",
        "acquirer": "text",
        "payment_type": "payment",
        "origin": "origin",
        "corrected_on": "days",
    },
)
_STATEMENT_FACTORY = trusted_factory(
    StatementRow,
    {
        "establishment_code": "text",
        "acquirer": "text",
        "brand": "text",
        "payment_type": "payment",
        "sale_date": "days",
        "expected_payment_date": "days",
        "event_type": "event",
    },
)
_PAYMENT_TYPES = {p.value: p for p in PaymentType}
_ORIGINS = {o.value: o for o in Origin}
_EVENT_TYPES = {e.value: e for e in EventType}


def receipt_maker() -> Callable[[Sequence[Any]], Receipt]:
    """Builds a `Receipt` from values already canonical (stored ones), in field order, enums as
    their values, skipping the validation of `__post_init__`."""
    return _RECEIPT_FACTORY(text=Interner(), payment=_PAYMENT_TYPES, origin=_ORIGINS, days=Interner())


def statement_row_maker() -> Callable[[Sequence[Any]], StatementRow]:
    """`receipt_maker` for `StatementRow`."""
    return _STATEMENT_FACTORY(text=Interner(), payment=_PAYMENT_TYPES, event=_EVENT_TYPES, days=Interner())
