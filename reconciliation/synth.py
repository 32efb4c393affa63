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
from collections.abc import Sequence
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
    def __init__(self, rng: random.Random, n: int) -> None:
        self.rng = rng
        pool = 3 * n + 100
        self._nsus = iter(rng.sample(range(10**8, 10**9), pool))
        self._auths = iter(rng.sample(range(36**5, 36**6), pool))
        self.next_record = 1_000_000_000
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
    unknown = set(faults) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown faults: {sorted(unknown)}")
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
    as_of = as_of or start_date + timedelta(days=days - 1)
    as_of_ord = as_of.toordinal()

    receipts: list[Receipt] = []
    rows: list[StatementRow] = []
    expected: dict[tuple[Kind, str], Expectation] = {}
    late_copies: list[Receipt] = []
    late_rows: list[tuple[StatementRow, str]] = []
    pad = max(8, len(str(2 * n_receipts)))

    def unpaired(day: date, corrected: date | None = None) -> Status:
        return unpaired_status(day, as_of, lookback_days, corrected)

    for i in range(n_receipts):
        est = rng.choice(codes)
        acquirer = acquirer_of[est]
        payment_type: PaymentType = gen.weighted(_PAYMENT_WEIGHTS)  # type: ignore[assignment]
        fault = rng.choice(faults) if faults and rng.random() < fault_rate else None
        if fault in _CARD_ONLY and payment_type in (PaymentType.PIX, PaymentType.WALLET):
            payment_type = PaymentType.CREDIT if fault != PAYMENT_TYPE else PaymentType.DEBIT
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
        is_instant = payment_type in (PaymentType.PIX, PaymentType.WALLET)
        txid = None
        nsu: str | None = None
        auth: str | None = None
        if is_instant:
            if rng.random() >= pix_without_txid:
                txid = gen.txid()
            else:
                amount = gen.free_pix_amount(est, amount, sold_at.timestamp())
        else:
            nsu, auth = gen.nsu(), gen.auth()
        if fault == AMOUNT and is_instant and txid is None:
            fault = None  # a txid-less Pix pairs on its amount: a changed amount is a missing sale
        brand = _brand_for(gen, payment_type)
        origin: Origin = gen.weighted(_ORIGIN_WEIGHTS)  # type: ignore[assignment]
        receipt = Receipt(
            sale_id=f"{i + 1:0{pad}d}",
            establishment_code=est,
            sale_datetime=sold_at,
            amount_cents=amount,
            payment_type=payment_type,
            brand=brand,
            acquirer=acquirer,
            installments=installments,
            authorization_code=auth,
            nsu=nsu,
            origin=origin,
            tid=f"{rng.randrange(10**19, 10**20)}" if payment_type is PaymentType.CREDIT else None,
            txid=txid,
            terminal=f"T{rng.randrange(1, 9):02d}",
            cnpj=cnpj_of[est],
        )

        # The retorno as the acquirer sees the sale.
        s_amount, s_inst, s_brand, s_type = amount, installments, brand, payment_type
        s_nsu, s_auth = nsu, auth
        divergences: list[Divergence] = []
        if fault == AUTHORIZATION_CODE:
            s_auth = gen.auth()
            divergences.append(Divergence.AUTHORIZATION_CODE)
        elif fault == MISSING_AUTHORIZATION:
            receipt = replace(receipt, authorization_code=None)
            divergences.append(Divergence.AUTHORIZATION_CODE)
        elif fault == NSU:
            s_nsu = gen.nsu()
            divergences.append(Divergence.NSU)
        elif fault == AMOUNT:
            s_amount = amount + rng.choice((-1, 1)) * rng.randrange(1, max(2, amount // 10))
            s_amount = max(1, s_amount)
            divergences.append(Divergence.AMOUNT)
        elif fault == INSTALLMENTS:
            s_inst = rng.choice([n for n in range(1, 13) if n != installments])
            divergences.append(Divergence.INSTALLMENTS)
        elif fault == BRAND:
            s_brand = rng.choice([b for b in CARD_BRANDS if b != brand])
            divergences.append(Divergence.BRAND)
        elif fault == PAYMENT_TYPE:
            s_type = PaymentType.CREDIT
            divergences.append(Divergence.PAYMENT_TYPE)

        lag = rng.randrange(0, 41) if fault != LATE_CAPTURE else rng.randrange(40, 300)
        captured = sold_at + timedelta(seconds=lag)
        if fault == LATE_CAPTURE and captured.date() == sold_at.date():
            captured = datetime.combine(day + timedelta(days=1), time(0, 1), tzinfo=zone)
        s_day = captured.date()
        fee_rate = _FEE_RATES.get(s_type, 0.025)
        sale_rows: list[StatementRow] = []
        for number, gross in enumerate(split_installments(s_amount, s_inst), start=1):
            fee = round(gross * fee_rate)
            sale_rows.append(
                StatementRow(
                    record_id=gen.record_id(),
                    establishment_code=est,
                    acquirer=acquirer,
                    brand=s_brand,
                    payment_type=s_type,
                    sale_date=s_day,
                    sale_time=captured.time().replace(microsecond=0),
                    authorization_code=s_auth,
                    nsu=s_nsu,
                    tid=receipt.tid,
                    txid=txid,
                    installments=s_inst,
                    installment_number=number,
                    sale_amount_cents=s_amount,
                    gross_amount_cents=gross,
                    fee_amount_cents=fee,
                    net_amount_cents=gross - fee,
                    expected_payment_date=s_day + timedelta(days=_payment_days(s_type, number)),
                    event_type=EventType.SALE,
                )
            )
        events: list[StatementRow] = []

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

        event_status: Status | None = None
        if fault == CANCELLATION:
            events = [event(r, EventType.CANCELLATION, -1, 2) for r in sale_rows]
            event_status = Status.CANCELLED
        elif fault == CHARGEBACK:
            events = [event(sale_rows[0], EventType.CHARGEBACK, -1, 20)]
            event_status = Status.CHARGEBACK
        elif fault == CHARGEBACK_REVERSAL:
            events = [
                event(sale_rows[0], EventType.CHARGEBACK, -1, 20),
                event(sale_rows[0], EventType.CHARGEBACK_REVERSAL, 1, 40),
            ]
        elif fault == ADJUSTMENT:
            adj = event(sale_rows[0], EventType.ADJUSTMENT, -1, 5)
            events = [replace(adj, gross_amount_cents=0, fee_amount_cents=37, net_amount_cents=-37)]

        sale_ids = tuple(r.record_id for r in sale_rows) + tuple(r.record_id for r in events)
        r_day = sold_at.date()
        has_receipt = fault != MISSING_ERP
        has_retorno = fault != MISSING_RETORNO
        paired = has_receipt and has_retorno and r_day.toordinal() <= as_of_ord and s_day <= as_of
        if paired:
            status = event_status or (Status.DIVERGENT if divergences else Status.MATCHED)
            divs = tuple(divergences) if status is Status.DIVERGENT else ()
            receipt_exp = Expectation(status, divs, sale_ids)
            row_exp = Expectation(status, divs, (receipt.sale_id,))
        else:
            receipt_exp = Expectation(unpaired(r_day))
            row_status = unpaired(s_day)
            if s_day <= as_of and event_status is not None:
                row_status = event_status
            row_exp = Expectation(row_status)
        if has_receipt:
            receipts.append(receipt)
            expected[(Kind.SALE, receipt.sale_id)] = receipt_exp
            if fault == DUPLICATE_RECEIPT:
                late_copies.append(receipt)
        if has_retorno:
            for row in (*sale_rows, *events):
                rows.append(row)
                expected[(Kind.STATEMENT, row.record_id)] = row_exp
            if fault == DUPLICATE_ROW:
                late_rows.append((sale_rows[-1], sale_rows[-1].record_id))

    # Copies get the highest ids, so the originals are the ones kept.
    for k, original in enumerate(late_copies):
        copy = replace(original, sale_id=f"{n_receipts + k + 1:0{pad}d}")
        receipts.append(copy)
        expected[(Kind.SALE, copy.sale_id)] = Expectation(Status.DUPLICATE, (), (original.sale_id,))
    for row, original_id in late_rows:
        copy_row = replace(row, record_id=gen.record_id())
        rows.append(copy_row)
        expected[(Kind.STATEMENT, copy_row.record_id)] = Expectation(Status.DUPLICATE, (), (original_id,))
    return SyntheticData(receipts, rows, expected)
