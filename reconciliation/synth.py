"""Seeded synthetic receipts and retorno rows, with the status each record must end with.

Used by the tests (row-by-row checks), the integrator simulator and the benchmark. The data look
like a pharmacy chain's card and Pix receipts: credit in up to 12 installments (the first takes
the rounding remainder), debit, vouchers, Pix with and without txid, digital wallets, capture lag
(a 23:59 sale captured after midnight), and optional injected faults, each with its expected
outcome under `reconcile(..., as_of, lookback_days)`.

Identifiers are unique by construction (NSU, authorization code, txid; txid-less Pix sales of the
same establishment and amount are kept more than 2 minutes apart), so every expectation is
unambiguous.
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import NamedTuple

from reconciliation.matcher import PIX_TIME_TOLERANCE_SECONDS
from reconciliation.records import (
    Divergence,
    EventType,
    Kind,
    Origin,
    PaymentType,
    Receipt,
    StatementRow,
    Status,
    business_tz,
    split_installments,
)
from reconciliation.window import unpaired_status

# Injected faults, by name.
AUTHORIZATION_CODE = "authorization_code"  # retorno carries another authorization code
MISSING_AUTHORIZATION = "missing_authorization"  # the ERP receipt has no authorization code
NSU = "nsu"  # NSU changed by the acquirer's reprocessing
AMOUNT = "amount"
INSTALLMENTS = "installments"
BRAND = "brand"
PAYMENT_TYPE = "payment_type"  # debit registered as credit
MISSING_RETORNO = "missing_retorno"  # the integrator never sends the sale
MISSING_ERP = "missing_erp"  # the retorno lists a sale the ERP does not have
DUPLICATE_RECEIPT = "duplicate_receipt"
DUPLICATE_ROW = "duplicate_row"
CANCELLATION = "cancellation"
CHARGEBACK = "chargeback"
CHARGEBACK_REVERSAL = "chargeback_reversal"
ADJUSTMENT = "adjustment"
LATE_CAPTURE = "late_capture"  # sold at 23:5x, captured after midnight

FAULTS: tuple[str, ...] = (
    AUTHORIZATION_CODE,
    MISSING_AUTHORIZATION,
    NSU,
    AMOUNT,
    INSTALLMENTS,
    BRAND,
    PAYMENT_TYPE,
    MISSING_RETORNO,
    MISSING_ERP,
    DUPLICATE_RECEIPT,
    DUPLICATE_ROW,
    CANCELLATION,
    CHARGEBACK,
    CHARGEBACK_REVERSAL,
    ADJUSTMENT,
    LATE_CAPTURE,
)
# Faults of the acquirer's side, the ones `retorno_for` can inject into a remessa's answer.
RETORNO_FAULTS: tuple[str, ...] = tuple(
    f for f in FAULTS if f not in (MISSING_AUTHORIZATION, MISSING_ERP, DUPLICATE_RECEIPT)
)
# Faults that need card identifiers (NSU and authorization code) on both sides.
_CARD_ONLY = frozenset(
    {AUTHORIZATION_CODE, MISSING_AUTHORIZATION, NSU, INSTALLMENTS, BRAND, PAYMENT_TYPE, LATE_CAPTURE}
)

ACQUIRERS = ("cielo", "rede", "stone", "getnet", "pagbank")
CARD_BRANDS = ("visa", "mastercard", "elo", "amex", "hipercard")
VOUCHER_BRANDS = ("alelo", "ticket", "vr", "pluxee")
WALLET_BRANDS = ("picpay", "mercadopago")
_PAYMENT_WEIGHTS = (
    (PaymentType.CREDIT, 45),
    (PaymentType.DEBIT, 28),
    (PaymentType.PIX, 15),
    (PaymentType.VOUCHER, 6),
    (PaymentType.WALLET, 6),
)
_ORIGIN_WEIGHTS = ((Origin.SALE, 90), (Origin.INVOICE_PAYMENT, 7), (Origin.OTHER_RECEIPT, 3))
_FEE_RATES = {PaymentType.DEBIT: 0.011, PaymentType.PIX: 0.0, PaymentType.VOUCHER: 0.05}
_INSTALLMENT_WEIGHTS = ((1, 55), (2, 12), (3, 12), (4, 5), (5, 4), (6, 5), (10, 4), (12, 3))
_TXID_ALPHABET = string.ascii_letters + string.digits
_B36 = string.digits + string.ascii_uppercase
_PIX_SEPARATION_SECONDS = 2 * PIX_TIME_TOLERANCE_SECONDS + 60


@dataclass(frozen=True, slots=True)
class Expectation:
    """What `reconcile` must say about one record."""

    status: Status
    divergences: tuple[Divergence, ...] = ()
    counterpart_ids: tuple[str, ...] = ()


class SyntheticData(NamedTuple):
    receipts: list[Receipt]
    statement_rows: list[StatementRow]
    expected: dict[tuple[Kind, str], Expectation]


class _Gen:
    def __init__(self, rng: random.Random, n: int, first_record_id: int = 1_000_000_001) -> None:
        self.rng = rng
        pool = 3 * n + 100
        self._nsus = iter(rng.sample(range(10**8, 10**9), pool))
        self._auths = iter(rng.sample(range(36**5, 36**6), pool))
        self.next_record = first_record_id - 1
        self.used_pix_slots: dict[tuple[str, int], list[float]] = {}
        self._tables: dict[int, tuple[list[object], list[int]]] = {}

    def nsu(self) -> str:
        return str(next(self._nsus))

    def auth(self) -> str:
        value = next(self._auths)
        digits = []
        while value:
            value, d = divmod(value, 36)
            digits.append(_B36[d])
        return "".join(reversed(digits))

    def txid(self) -> str:
        return "".join(self.rng.choices(_TXID_ALPHABET, k=32))

    def record_id(self) -> str:
        self.next_record += 1
        return str(self.next_record)

    def weighted(self, pairs: Sequence[tuple[object, int]]) -> object:
        table = self._tables.get(id(pairs))
        if table is None:
            cumulative = list(itertools.accumulate(p[1] for p in pairs))
            table = self._tables[id(pairs)] = ([p[0] for p in pairs], cumulative)
        return self.rng.choices(table[0], cum_weights=table[1])[0]

    def free_pix_amount(self, est: str, amount: int, ts: float) -> int:
        """Nudge the amount until no other txid-less Pix of the establishment is near in time.

        Capture lag is at most 40 s, so sales more than 2 x 2 minutes + 1 minute apart can never
        be each other's candidate on either side.
        """
        while True:
            slots = self.used_pix_slots.setdefault((est, amount), [])
            if all(abs(ts - t) > _PIX_SEPARATION_SECONDS for t in slots):
                slots.append(ts)
                return amount
            amount += 1


def _brand_for(gen: _Gen, payment_type: PaymentType) -> str:
    rng = gen.rng
    if payment_type is PaymentType.PIX:
        return "pix"
    if payment_type is PaymentType.WALLET:
        return rng.choice(WALLET_BRANDS)
    if payment_type is PaymentType.VOUCHER:
        return rng.choice(VOUCHER_BRANDS)
    return rng.choice(CARD_BRANDS)


def _payment_days(payment_type: PaymentType, number: int) -> int:
    if payment_type is PaymentType.CREDIT:
        return 30 * number
    if payment_type is PaymentType.DEBIT:
        return 1
    if payment_type is PaymentType.VOUCHER:
        return 30
    return 0


class _View(NamedTuple):
    """One sale as the acquirer reports it."""

    rows: list[StatementRow]
    events: list[StatementRow]
    divergences: tuple[Divergence, ...]
    event_status: Status | None
    day: date


def _acquirer_view(gen: _Gen, true: Receipt, fault: str | None, zone: tzinfo) -> _View:
    """The retorno rows of the sale `true`, with `fault` applied on the acquirer's side."""
    rng = gen.rng
    amount, installments, brand, payment_type = (
        true.amount_cents,
        true.installments,
        true.brand,
        true.payment_type,
    )
    nsu, auth = true.nsu, true.authorization_code
    divergences: list[Divergence] = []
    if fault == AUTHORIZATION_CODE:
        auth = gen.auth()
        divergences.append(Divergence.AUTHORIZATION_CODE)
    elif fault == NSU:
        nsu = gen.nsu()
        divergences.append(Divergence.NSU)
    elif fault == AMOUNT:
        amount = max(1, amount + rng.choice((-1, 1)) * rng.randrange(1, max(2, amount // 10)))
        divergences.append(Divergence.AMOUNT)
    elif fault == INSTALLMENTS:
        installments = rng.choice([n for n in range(1, 13) if n != installments])
        divergences.append(Divergence.INSTALLMENTS)
    elif fault == BRAND:
        brand = rng.choice([b for b in CARD_BRANDS if b != brand])
        divergences.append(Divergence.BRAND)
    elif fault == PAYMENT_TYPE:
        payment_type = PaymentType.CREDIT if payment_type is not PaymentType.CREDIT else PaymentType.DEBIT
        divergences.append(Divergence.PAYMENT_TYPE)

    sold_at = true.sale_datetime.astimezone(zone)
    if fault == LATE_CAPTURE:
        captured = sold_at + timedelta(seconds=rng.randrange(40, 300))
        if captured.date() == sold_at.date():
            captured = datetime.combine(sold_at.date() + timedelta(days=1), time(0, 1), tzinfo=zone)
    else:
        captured = sold_at + timedelta(seconds=rng.randrange(0, 41))
    day = captured.date()
    fee_rate = _FEE_RATES.get(payment_type, 0.025)
    rows: list[StatementRow] = []
    for number, gross in enumerate(split_installments(amount, installments), start=1):
        fee = round(gross * fee_rate)
        rows.append(
            StatementRow(
                record_id=gen.record_id(),
                establishment_code=true.establishment_code,
                acquirer=true.acquirer,
                brand=brand,
                payment_type=payment_type,
                sale_date=day,
                sale_time=captured.time().replace(microsecond=0),
                authorization_code=auth,
                nsu=nsu,
                tid=true.tid,
                txid=true.txid,
                installments=installments,
                installment_number=number,
                sale_amount_cents=amount,
                gross_amount_cents=gross,
                fee_amount_cents=fee,
                net_amount_cents=gross - fee,
                expected_payment_date=day + timedelta(days=_payment_days(payment_type, number)),
                event_type=EventType.SALE,
            )
        )

    def event(base: StatementRow, kind: EventType, sign: int, pay_in: int) -> StatementRow:
        gross = sign * abs(base.gross_amount_cents)
        fee = sign * abs(base.fee_amount_cents)
        return replace(
            base,
            record_id=gen.record_id(),
            gross_amount_cents=gross,
            fee_amount_cents=fee,
            net_amount_cents=gross - fee,
            expected_payment_date=base.sale_date + timedelta(days=pay_in),
            event_type=kind,
        )

    events: list[StatementRow] = []
    event_status: Status | None = None
    if fault == CANCELLATION:
        events = [event(r, EventType.CANCELLATION, -1, 2) for r in rows]
        event_status = Status.CANCELLED
    elif fault == CHARGEBACK:
        events = [event(rows[0], EventType.CHARGEBACK, -1, 20)]
        event_status = Status.CHARGEBACK
    elif fault == CHARGEBACK_REVERSAL:
        events = [
            event(rows[0], EventType.CHARGEBACK, -1, 20),
            event(rows[0], EventType.CHARGEBACK_REVERSAL, 1, 40),
        ]
    elif fault == ADJUSTMENT:
        adj = event(rows[0], EventType.ADJUSTMENT, -1, 5)
        events = [replace(adj, gross_amount_cents=0, fee_amount_cents=37, net_amount_cents=-37)]
    return _View(rows, events, tuple(divergences), event_status, day)


class _Book:
    """Collects the records and what the matcher must say about each."""

    def __init__(self, as_of: date, lookback_days: int, zone: tzinfo) -> None:
        self.as_of = as_of
        self.lookback_days = lookback_days
        self.zone = zone
        self.receipts: list[Receipt] = []
        self.rows: list[StatementRow] = []
        self.expected: dict[tuple[Kind, str], Expectation] = {}
        self.receipt_copies: list[tuple[Receipt, str]] = []
        self.row_copies: list[tuple[StatementRow, str]] = []

    def add(self, receipt: Receipt | None, view: _View | None, fault: str | None) -> None:
        """One sale: the ERP receipt (None when the ERP lacks it), the retorno (None when lost)."""
        as_of = self.as_of
        r_day = receipt.sale_datetime.astimezone(self.zone).date() if receipt is not None else None
        if receipt is not None and view is not None and r_day is not None and max(r_day, view.day) <= as_of:
            status = view.event_status or (Status.DIVERGENT if view.divergences else Status.MATCHED)
            divs = view.divergences if status is Status.DIVERGENT else ()
            ids = tuple(r.record_id for r in (*view.rows, *view.events))
            receipt_exp = Expectation(status, divs, ids)
            row_exp = Expectation(status, divs, (receipt.sale_id,))
        else:
            receipt_exp = Expectation(self.unpaired(r_day)) if r_day else None
            row_exp = None
            if view is not None:
                row_status = self.unpaired(view.day)
                if view.day <= as_of and view.event_status is not None:
                    row_status = view.event_status
                row_exp = Expectation(row_status)
        if receipt is not None and receipt_exp is not None:
            self.receipts.append(receipt)
            self.expected[(Kind.SALE, receipt.sale_id)] = receipt_exp
            if fault == DUPLICATE_RECEIPT:
                self.receipt_copies.append((receipt, receipt.sale_id))
        if view is not None and row_exp is not None:
            for row in (*view.rows, *view.events):
                self.rows.append(row)
                self.expected[(Kind.STATEMENT, row.record_id)] = row_exp
            if fault == DUPLICATE_ROW:
                self.row_copies.append((view.rows[-1], view.rows[-1].record_id))

    def unpaired(self, day: date) -> Status:
        return unpaired_status(day, self.as_of, self.lookback_days)

    def finish(self, receipt_id: Callable[[int], str], gen: _Gen) -> SyntheticData:
        """Copies get the highest ids, so the originals are the ones kept."""
        for k, (original, original_id) in enumerate(self.receipt_copies):
            copy = replace(original, sale_id=receipt_id(k))
            self.receipts.append(copy)
            self.expected[(Kind.SALE, copy.sale_id)] = Expectation(Status.DUPLICATE, (), (original_id,))
        for row, original_id in self.row_copies:
            copy_row = replace(row, record_id=gen.record_id())
            self.rows.append(copy_row)
            self.expected[(Kind.STATEMENT, copy_row.record_id)] = Expectation(
                Status.DUPLICATE, (), (original_id,)
            )
        return SyntheticData(self.receipts, self.rows, self.expected)


def _check_faults(faults: Sequence[str], allowed: Sequence[str]) -> None:
    unknown = set(faults) - set(allowed)
    if unknown:
        raise ValueError(f"unknown faults: {sorted(unknown)}")


def generate(
    n_receipts: int,
    seed: int,
    start_date: date,
    days: int,
    establishments: int | Sequence[str] = 3,
    *,
    fault_rate: float = 0.0,
    faults: Sequence[str] = FAULTS,
    as_of: date | None = None,
    lookback_days: int = 3,
    pix_without_txid: float = 0.1,
    tz: tzinfo | None = None,
) -> SyntheticData:
    """`n_receipts` sales over `days` days from `start_date`, spread over the establishments.

    `establishments` is a count or the establishment codes. About `fault_rate` of the sales get
    one fault drawn from `faults` (see `FAULTS`). Expectations are computed for `as_of` (default:
    the last day) and `lookback_days`. Same arguments, same data.
    """
    _check_faults(faults, FAULTS)
    if days < 1 or n_receipts < 0:
        raise ValueError("days must be >= 1 and n_receipts >= 0")
    zone = tz or business_tz()
    rng = random.Random(seed)
    gen = _Gen(rng, n_receipts)
    if isinstance(establishments, int):
        codes = [str(1_000_000_000 + rng.randrange(10**9)) for _ in range(establishments)]
    else:
        codes = list(establishments)
    if not codes:
        raise ValueError("at least one establishment")
    acquirer_of = {code: ACQUIRERS[i % len(ACQUIRERS)] for i, code in enumerate(codes)}
    cnpj_of = {code: f"{rng.randrange(10**14):014d}" for code in codes}
    book = _Book(as_of or start_date + timedelta(days=days - 1), lookback_days, zone)
    pad = max(8, len(str(2 * n_receipts)))

    for i in range(n_receipts):
        est = rng.choice(codes)
        payment_type: PaymentType = gen.weighted(_PAYMENT_WEIGHTS)  # type: ignore[assignment]
        fault = rng.choice(faults) if faults and rng.random() < fault_rate else None
        if fault in _CARD_ONLY and payment_type in (PaymentType.PIX, PaymentType.WALLET):
            payment_type = PaymentType.CREDIT
        if fault == PAYMENT_TYPE:
            payment_type = PaymentType.DEBIT
        day = start_date + timedelta(days=rng.randrange(days))
        seconds = rng.randrange(7 * 3600, 24 * 3600)
        if fault == LATE_CAPTURE:
            seconds = rng.randrange(23 * 3600 + 57 * 60, 23 * 3600 + 59 * 60 + 30)
        sold_at = datetime.combine(day, time(0), tzinfo=zone) + timedelta(seconds=seconds)
        amount = max(300, min(500_000, int(rng.lognormvariate(8.6, 0.9))))
        installments = 1
        if payment_type is PaymentType.CREDIT:
            installments = gen.weighted(_INSTALLMENT_WEIGHTS)  # type: ignore[assignment]
        txid = nsu = auth = None
        if payment_type in (PaymentType.PIX, PaymentType.WALLET):
            if rng.random() >= pix_without_txid:
                txid = gen.txid()
            else:
                amount = gen.free_pix_amount(est, amount, sold_at.timestamp())
                if fault == AMOUNT:
                    fault = None  # a txid-less Pix pairs on its amount: another amount is another sale
        else:
            nsu, auth = gen.nsu(), gen.auth()
        true = Receipt(
            sale_id=f"{i + 1:0{pad}d}",
            establishment_code=est,
            sale_datetime=sold_at,
            amount_cents=amount,
            payment_type=payment_type,
            brand=_brand_for(gen, payment_type),
            acquirer=acquirer_of[est],
            installments=installments,
            authorization_code=auth,
            nsu=nsu,
            origin=gen.weighted(_ORIGIN_WEIGHTS),  # type: ignore[arg-type]
            tid=f"{rng.randrange(10**19, 10**20)}" if payment_type is PaymentType.CREDIT else None,
            txid=txid,
            terminal=f"T{rng.randrange(1, 9):02d}",
            cnpj=cnpj_of[est],
        )
        view = _acquirer_view(gen, true, fault, zone)
        erp: Receipt | None = true
        if fault == MISSING_AUTHORIZATION:
            erp = replace(true, authorization_code=None)
            view = view._replace(divergences=(Divergence.AUTHORIZATION_CODE,))
        elif fault == MISSING_ERP:
            erp = None
        book.add(erp, None if fault == MISSING_RETORNO else view, fault)
    return book.finish(lambda k: f"{n_receipts + k + 1:0{pad}d}", gen)


def retorno_for(
    receipts: Sequence[Receipt],
    seed: int,
    *,
    fault_rate: float = 0.0,
    faults: Sequence[str] = RETORNO_FAULTS,
    first_record_id: int = 1_000_000_001,
    as_of: date | None = None,
    lookback_days: int = 3,
    tz: tzinfo | None = None,
) -> SyntheticData:
    """The retorno an integrator would send for `receipts` (a remessa), with acquirer-side faults.

    Record ids are consecutive numbers from `first_record_id` (pick a fresh range per call).
    About `fault_rate` of the receipts get one fault from `faults` (a subset of `RETORNO_FAULTS`;
    a fault that cannot apply to a receipt, such as a changed NSU on a Pix, is skipped). The
    expectations assume the receipts are unambiguous (unique identifiers, as `generate` makes them)
    and hold for `as_of` (default: the latest sale date) and `lookback_days`.
    """
    _check_faults(faults, RETORNO_FAULTS)
    zone = tz or business_tz()
    rng = random.Random(seed)
    gen = _Gen(rng, len(receipts), first_record_id=first_record_id)
    latest = max((r.sale_datetime.astimezone(zone).date() for r in receipts), default=date.today())
    book = _Book(as_of or latest, lookback_days, zone)
    for receipt in receipts:
        fault = rng.choice(faults) if faults and rng.random() < fault_rate else None
        if not _applies(fault, receipt):
            fault = None
        view = _acquirer_view(gen, receipt, fault, zone)
        book.add(receipt, None if fault == MISSING_RETORNO else view, fault)
    return book.finish(_no_copies, gen)


def _applies(fault: str | None, receipt: Receipt) -> bool:
    card_ids = receipt.nsu is not None and receipt.authorization_code is not None
    if fault in _CARD_ONLY and not card_ids:
        return False
    if fault == PAYMENT_TYPE:
        return receipt.installments == 1
    # A txid-less Pix pairs on its amount: another amount would be another sale.
    return not (fault == AMOUNT and not card_ids and receipt.txid is None)


def _no_copies(k: int) -> str:
    raise AssertionError("retorno_for never copies a receipt")
