"""The pure reconciliation matcher (SPEC section 8): records in, statuses and pairs out.

No database, no clock: the result is a function of the two record sets, `as_of`, the look-back
and the time zone only, whatever the input order. Every lookup goes through hash indexes; records
are only ever compared with the few others of their bucket, never all pairs.

Steps:
1. duplicates on each side (identical in every column but the id; the lowest id is kept);
2. retorno rows grouped into retorno sales (installment rows by establishment, acquirer, sale
   date, NSU, authorization, installments, txid and sale amount; event rows attached to their
   sale by the same identifiers and installment number);
3. the pairing cascade, strongest evidence first, each record paired at most once, only records
   dated up to `as_of`, only within one establishment:
   (a) NSU and authorization both equal, dates at most one day apart; then, in the same bucket,
       the one receipt and the one sale left more than a day apart (`date` divergence);
   (b) NSU equal, amount equal, dates at most one day apart, the only candidate on both sides;
       then the same with the authorization code;
   (c) txid equal; then, for pix and wallet without txid on either side, amount equal and times
       at most 2 minutes apart with exactly one candidate on each side;
4. statuses: pairs are matched or divergent, then a cancellation or a standing chargeback (more
   chargebacks than reversals) wins; unpaired records follow the window (`reconciliation.window`).

Layout, for speed: every record carrying both NSU and authorization code lands in one bucket per
(establishment, NSU, authorization) together with its duplicates, its installment and event rows
and its rule (a) counterparts, so steps 1 to 3(a) run bucket by bucket, and the common bucket
(one receipt, the rows of one plain sale) takes a short path. Records with neither identifier but
a txid are bucketed by (establishment, txid) the same way: no rule before (c) can touch them.
Everything else, and whatever a bucket leaves unpaired, goes through the general path, which is
small. A bucket too crowded to compare all against all (placeholder identifiers) is only matched
within equal amounts (`GREEDY_LIMIT`).

Pairing, grouping and duplicates never cross establishments, so reconciling each establishment
apart gives the same outcomes (less memory for a caller with millions of records).
"""

from __future__ import annotations

import gc
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from itertools import repeat
from operator import attrgetter
from typing import Any, NamedTuple, Protocol

from reconciliation.records import (
    Divergence,
    EventType,
    Kind,
    PaymentType,
    Receipt,
    StatementRow,
    Status,
    business_tz,
)
from reconciliation.window import DEFAULT_LOOKBACK_DAYS, window_start

RULE_A = "a:nsu+authorization"
RULE_A_DATE = "a:nsu+authorization (dates more than one day apart)"
RULE_B_NSU = "b:nsu+amount+date"
RULE_B_AUTH = "b:authorization+amount+date"
RULE_C_TXID = "c:txid"
RULE_C_TIME = "c:amount+time"
RULE_DUPLICATE = "duplicate"

PIX_TIME_TOLERANCE_SECONDS = 120
# Most candidate pairs one bucket may compare (see `_Run.greedy`).
GREEDY_LIMIT = 40_000
_INSTANT_TYPES = frozenset({PaymentType.PIX, PaymentType.WALLET})
_LOOSE_IDENTIFIER_RULES = frozenset({RULE_C_TXID, RULE_C_TIME})
_SALE = EventType.SALE


class Outcome(NamedTuple):
    """What the run says about one record (SPEC section 8, without kind and id)."""

    status: Status
    divergences: tuple[Divergence, ...]
    counterpart_ids: tuple[str, ...]
    rule: str


class ResultRow(NamedTuple):
    """One row of the result CSV: `kind,id,status,divergences,counterpart_ids,rule`."""

    kind: Kind
    id: str
    status: Status
    divergences: tuple[Divergence, ...]
    counterpart_ids: tuple[str, ...]
    rule: str


@dataclass(frozen=True, slots=True)
class ReconResult:
    """Outcome of every receipt (by sale_id) and of every retorno row (by record_id), and counts.

    Outcomes are shared between records (all rows of one retorno sale hold the same object): do
    not rely on identity. `divergence_counts` counts divergent receipts by divergence; `pairs` is
    the number of receipt / retorno-sale pairs. Mapping order is not significant.
    """

    as_of: date
    lookback_days: int
    receipts: Mapping[str, Outcome]
    statement: Mapping[str, Outcome]
    receipt_status_counts: Mapping[Status, int]
    statement_status_counts: Mapping[Status, int]
    divergence_counts: Mapping[Divergence, int]
    pairs: int

    def rows(self) -> Iterator[ResultRow]:
        """Every receipt, then every retorno row, ready for `csvformat.write_result_csv`."""
        sale, statement = Kind.SALE, Kind.STATEMENT
        for sale_id, o in self.receipts.items():
            yield ResultRow(sale, sale_id, *o)
        for record_id, o in self.statement.items():
            yield ResultRow(statement, record_id, *o)

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts (`recon run`, `/reconciliation/summary`)."""
        return summary_of(self)


class Counted(Protocol):
    """What a summary is made of (`ReconResult`, `matcher_columnar.FrameResult`)."""

    @property
    def as_of(self) -> date: ...
    @property
    def lookback_days(self) -> int: ...
    @property
    def receipt_status_counts(self) -> Mapping[Status, int]: ...
    @property
    def statement_status_counts(self) -> Mapping[Status, int]: ...
    @property
    def divergence_counts(self) -> Mapping[Divergence, int]: ...
    @property
    def pairs(self) -> int: ...


def summary_of(result: Counted) -> dict[str, Any]:
    """JSON-ready counts of a result (every record has exactly one status)."""
    return {
        "as_of": result.as_of.isoformat(),
        "lookback_days": result.lookback_days,
        "receipts": sum(result.receipt_status_counts.values()),
        "statement_rows": sum(result.statement_status_counts.values()),
        "pairs": result.pairs,
        "sales": {s.value: n for s, n in result.receipt_status_counts.items()},
        "statement": {s.value: n for s, n in result.statement_status_counts.items()},
        "divergences": {d.value: n for d, n in result.divergence_counts.items()},
    }


def id_sort_key(value: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order, then the others in text order ('9' < '10' < 'A1')."""
    if value.isdigit():
        return (0, int(value), value)
    return (1, 0, value)


def _ident(value: str | None) -> str | None:
    """Identifier as compared: leading zeros are not significant (spreadsheets drop them)."""
    if value is None:
        return None
    return value.lstrip("0") or "0"


# --- duplicates ----------------------------------------------------------------------------------

# What makes two records copies of each other (the columnar residue compares the same columns).
RECEIPT_CONTENT_FIELDS = (
    "establishment_code",
    "sale_datetime",
    "amount_cents",
    "payment_type",
    "brand",
    "acquirer",
    "installments",
    "authorization_code",
    "nsu",
    "origin",
    "tid",
    "txid",
    "terminal",
    "cnpj",
)
ROW_CONTENT_FIELDS = (
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
    "sale_amount_cents",
    "gross_amount_cents",
    "fee_amount_cents",
    "net_amount_cents",
    "expected_payment_date",
    "event_type",
)
_RECEIPT_CONTENT = attrgetter(*RECEIPT_CONTENT_FIELDS)
_ROW_CONTENT = attrgetter(*ROW_CONTENT_FIELDS)
# A cheap subset of the columns finds the candidates in large lists; the full content decides.
_RECEIPT_QUICK = attrgetter("establishment_code", "sale_datetime", "amount_cents", "txid")
_ROW_QUICK = attrgetter(
    "establishment_code", "sale_date", "sale_time", "txid", "installment_number", "gross_amount_cents"
)


def _dedupe(records: list[Any], content: Callable[[Any], Any], get_id: Callable[[Any], str]) -> list[Any]:
    """Records whose content repeats, as [kept, copy, copy...] groups (the lowest id kept first)."""
    first: dict[Any, Any] = {}
    clashes: dict[Any, list[Any]] = {}
    setdefault = first.setdefault
    for rec in records:
        key = content(rec)
        seen = setdefault(key, rec)
        if seen is not rec:
            group = clashes.get(key)
            if group is None:
                clashes[key] = [seen, rec]
            else:
                group.append(rec)
    return [sorted(g, key=lambda r: id_sort_key(get_id(r))) for g in clashes.values()]


def _duplicate_groups(
    records: list[Any],
    quick: Callable[[Any], Any],
    content: Callable[[Any], Any],
    get_id: Callable[[Any], str],
) -> list[list[Any]]:
    """`_dedupe` for long lists: candidates by a few columns, then the whole content."""
    if len(records) < 64:
        return _dedupe(records, content, get_id)
    groups = []
    for candidates in _dedupe(records, quick, get_id):
        groups.extend(_dedupe(candidates, content, get_id))
    return groups


# --- retorno sales -------------------------------------------------------------------------------


class _Sale:
    """A retorno sale on the general path: installment rows (by number), events, describing row."""

    __slots__ = ("auth", "day", "events", "nsu", "order", "pair", "primary", "rows", "ts", "txid")

    def __init__(self, rows: list[StatementRow], order: tuple[int, int], primary: StatementRow) -> None:
        self.rows = rows
        self.events: list[StatementRow] = []
        self.order = order
        self.pair: _Rec | None = None
        self.ts: float | None = None
        self.describe(primary)

    def describe(self, primary: StatementRow) -> None:
        self.primary = primary
        self.day = primary.sale_date.toordinal()
        self.nsu = _ident(primary.nsu)
        self.auth = _ident(primary.authorization_code)
        self.txid = primary.txid.lower() if primary.txid else None

    def timestamp(self, tz: tzinfo) -> float | None:
        p = self.primary
        if self.ts is None and p.sale_time is not None:
            self.ts = datetime.combine(p.sale_date, p.sale_time, tzinfo=tz).timestamp()
        return self.ts

    def ids(self) -> tuple[str, ...]:
        return tuple([r.record_id for r in self.rows] + [e.record_id for e in self.events])

    def all_rows(self) -> list[StatementRow]:
        return self.rows + self.events if self.events else self.rows


def _base_key(row: StatementRow) -> tuple[Any, ...]:
    nsu, auth, txid = row.nsu, row.authorization_code, row.txid
    return (
        row.establishment_code,
        row.acquirer,
        row.sale_date,
        nsu,
        auth,
        row.installments,
        txid,
        # Without any identifier the capture time is what tells two sales apart.
        row.sale_time if nsu is None and auth is None and txid is None else None,
    )


_NUMBER = attrgetter("installment_number")


def _group_sales(rows: list[StatementRow]) -> list[_Sale]:
    """Group distinct retorno rows into sales (SPEC section 7)."""
    groups: dict[tuple[Any, ...], list[StatementRow]] = {}
    events: list[StatementRow] = []
    for row in rows:
        if row.event_type is _SALE:
            groups.setdefault((*_base_key(row), row.sale_amount_cents), []).append(row)
        else:
            events.append(row)
    sales: list[_Sale] = []
    by_base: dict[tuple[Any, ...], list[_Sale]] = {}
    for key, members in groups.items():
        members.sort(key=_NUMBER)
        if len({r.installment_number for r in members}) == len(members):
            parts = [members]
        else:
            parts = _split_by_occurrence(members)
        for k, part in enumerate(parts):
            sale = _Sale(part, (key[-1], k), part[0])
            sales.append(sale)
            by_base.setdefault(key[:-1], []).append(sale)
    for same_base in by_base.values():
        same_base.sort(key=attrgetter("order"))
    orphans: dict[tuple[Any, ...], _Sale] = {}
    events.sort(key=lambda r: id_sort_key(r.record_id))
    for event in events:
        base = _base_key(event)
        candidates = by_base.get(base)
        if candidates:
            target = candidates[0] if len(candidates) == 1 else _best_sale_for(candidates, event)
        else:
            # The sale's installment rows never came: its events stand for it.
            key = (*base, event.sale_amount_cents)
            target = orphans.get(key)
            if target is None:
                target = orphans[key] = _Sale([], (event.sale_amount_cents, 0), event)
                sales.append(target)
        target.events.append(event)
    for sale in orphans.values():
        sale.describe(min(sale.events, key=lambda r: (r.installment_number, id_sort_key(r.record_id))))
    return sales


def _best_sale_for(candidates: list[_Sale], event: StatementRow) -> _Sale:
    def score(sale: _Sale) -> tuple[bool, bool, bool]:
        taken = any(
            e.event_type is event.event_type and e.installment_number == event.installment_number
            for e in sale.events
        )
        return (
            sale.primary.sale_amount_cents == event.sale_amount_cents,
            any(r.installment_number == event.installment_number for r in sale.rows),
            not taken,
        )

    return max(candidates, key=score)  # the first of equal scores: the lowest order


def _split_by_occurrence(rows: list[StatementRow]) -> list[list[StatementRow]]:
    """Rows sharing every grouping field but repeating installment numbers are several sales."""
    ordered = sorted(rows, key=lambda r: (r.sale_time or time.min, r.tid or "", id_sort_key(r.record_id)))
    parts: list[list[StatementRow]] = []
    seen: dict[int, int] = {}
    for row in ordered:
        k = seen.get(row.installment_number, 0)
        seen[row.installment_number] = k + 1
        if k == len(parts):
            parts.append([])
        parts[k].append(row)
    for part in parts:
        part.sort(key=_NUMBER)
    return parts


def _event_status(events: list[StatementRow], status: Status) -> Status:
    cancelled = chargebacks = reversals = 0
    for e in events:
        kind = e.event_type
        if kind is EventType.CANCELLATION:
            cancelled += 1
        elif kind is EventType.CHARGEBACK:
            chargebacks += 1
        elif kind is EventType.CHARGEBACK_REVERSAL:
            reversals += 1
    if cancelled:
        return Status.CANCELLED
    if chargebacks > reversals:
        return Status.CHARGEBACK
    return status


_PLAIN_SALE_KEY = attrgetter(
    "event_type",
    "sale_amount_cents",
    "sale_date",
    "installments",
    "acquirer",
    "nsu",
    "authorization_code",
    "txid",
)


def _one_plain_sale(rows: list[StatementRow]) -> bool:
    """The rows (already sharing establishment, NSU and authorization) are exactly one sale:
    installment rows only, one per installment number, sharing every grouping column."""
    key = _PLAIN_SALE_KEY(rows[0])
    if key[0] is not _SALE:
        return False
    for r in rows:
        if _PLAIN_SALE_KEY(r) != key:
            return False
    return len(set(map(_NUMBER, rows))) == len(rows)


# --- receipts on the general path ----------------------------------------------------------------


class _Rec:
    __slots__ = ("auth", "day", "nsu", "rec", "ts")

    def __init__(self, rec: Receipt, day: int) -> None:
        self.rec = rec
        self.day = day
        self.nsu = _ident(rec.nsu)
        self.auth = _ident(rec.authorization_code)
        self.ts: float | None = None

    def timestamp(self) -> float:
        if self.ts is None:
            self.ts = self.rec.sale_datetime.timestamp()
        return self.ts


def _mismatches(rec: Receipt, p: StatementRow) -> int:
    return (
        (rec.amount_cents != p.sale_amount_cents)
        + (rec.installments != p.installments)
        + (rec.brand != p.brand)
        + (rec.payment_type is not p.payment_type)
    )


def _divergences(
    rec: Receipt,
    p: StatementRow,
    r_ids: tuple[str | None, str | None],
    s_ids: tuple[str | None, str | None],
    rule: str,
) -> tuple[Divergence, ...]:
    out: list[Divergence] = []
    if rec.amount_cents != p.sale_amount_cents:
        out.append(Divergence.AMOUNT)
    if rec.installments != p.installments:
        out.append(Divergence.INSTALLMENTS)
    if rec.brand != p.brand:
        out.append(Divergence.BRAND)
    if rec.payment_type is not p.payment_type:
        out.append(Divergence.PAYMENT_TYPE)
    # Pix and wallet pairs rest on txid or time: an identifier only one side carries is no fault.
    loose = rule in _LOOSE_IDENTIFIER_RULES
    (r_nsu, r_auth), (s_nsu, s_auth) = r_ids, s_ids
    if r_auth != s_auth and not (loose and (r_auth is None or s_auth is None)):
        out.append(Divergence.AUTHORIZATION_CODE)
    if r_nsu != s_nsu and not (loose and (r_nsu is None or s_nsu is None)):
        out.append(Divergence.NSU)
    if rule == RULE_A_DATE:
        out.append(Divergence.DATE)
    return tuple(out)


def _unique_pairs(
    rs: list[Any],
    ss: list[Any],
    r_pos: Callable[[Any], float],
    s_pos: Callable[[Any], float],
    tolerance: float,
) -> list[tuple[Any, Any]]:
    """Pairs that are each other's only candidate with positions (days, seconds) within tolerance."""
    if len(rs) == 1 and len(ss) == 1:
        r, s = rs[0], ss[0]
        return [(r, s)] if abs(r_pos(r) - s_pos(s)) <= tolerance else []
    s_sorted = sorted(((s_pos(s), k) for k, s in enumerate(ss)))
    s_at = [at for at, _ in s_sorted]
    r_at = sorted(r_pos(r) for r in rs)
    found = []
    for r in rs:
        at = r_pos(r)
        lo, hi = bisect_left(s_at, at - tolerance), bisect_right(s_at, at + tolerance)
        if hi - lo != 1:
            continue
        there, k = s_sorted[lo]
        if bisect_right(r_at, there + tolerance) - bisect_left(r_at, there - tolerance) == 1:
            found.append((r, ss[k]))
    return found


# --- the run -------------------------------------------------------------------------------------


class _Run:
    def __init__(self, as_of: date, lookback_days: int, zone: tzinfo) -> None:
        self.zone = zone
        self.as_of_ord = as_of.toordinal()
        self.start = window_start(as_of, lookback_days)
        self.start_ord = self.start.toordinal()
        self.receipt_out: dict[str, Outcome] = {}
        self.statement_out: dict[str, Outcome] = {}
        self.receipt_counts = dict.fromkeys(Status, 0)
        self.statement_counts = dict.fromkeys(Status, 0)
        self.divergence_counts = dict.fromkeys(Divergence, 0)
        self.pairs = 0
        # The general path: records left unpaired by the buckets or without both identifiers.
        self.left_recs: list[_Rec] = []
        self.left_sales: list[_Sale] = []
        self.paired: dict[int, tuple[_Sale, str]] = {}  # id(_Rec) -> (sale, rule)

    def day_of(self, rec: Receipt) -> int:
        return rec.sale_datetime.astimezone(self.zone).toordinal()

    # -- outputs

    def duplicates(self, groups: list[list[Any]], receipts: bool) -> list[Any]:
        """Record the copies of each group as duplicates; return them."""
        copies = []
        out = self.receipt_out if receipts else self.statement_out
        counts = self.receipt_counts if receipts else self.statement_counts
        for group in groups:
            kept = group[0].sale_id if receipts else group[0].record_id
            o = Outcome(Status.DUPLICATE, (), (kept,), RULE_DUPLICATE)
            for copy in group[1:]:
                out[copy.sale_id if receipts else copy.record_id] = o
                copies.append(copy)
        counts[Status.DUPLICATE] += len(copies)
        return copies

    def emit_pair(
        self,
        rec: Receipt,
        r_ids: tuple[str | None, str | None],
        primary: StatementRow,
        s_ids: tuple[str | None, str | None],
        rows: list[StatementRow],
        events: list[StatementRow],
        rule: str,
    ) -> None:
        if (
            rec.amount_cents == primary.sale_amount_cents
            and rec.installments == primary.installments
            and rec.brand == primary.brand
            and rec.payment_type is primary.payment_type
            and (rule is RULE_A or (r_ids == s_ids and rule is not RULE_A_DATE))
        ):
            divs: tuple[Divergence, ...] = ()
            status = Status.MATCHED
        else:
            divs = _divergences(rec, primary, r_ids, s_ids, rule)
            status = Status.DIVERGENT if divs else Status.MATCHED
        if events:
            status = _event_status(events, status)
            if status is not Status.DIVERGENT:
                divs = ()
            ids = tuple(map(_RECORD_ID, rows + events))
        else:
            ids = (rows[0].record_id,) if len(rows) == 1 else tuple(map(_RECORD_ID, rows))
        if divs:
            for d in divs:
                self.divergence_counts[d] += 1
        sale_id = rec.sale_id
        self.receipt_out[sale_id] = _new(Outcome, (status, divs, ids, rule))
        self.statement_out.update(zip(ids, repeat(_new(Outcome, (status, divs, (sale_id,), rule)))))
        self.receipt_counts[status] += 1
        self.statement_counts[status] += len(ids)
        self.pairs += 1

    def emit_unpaired_receipt(self, r: _Rec) -> None:
        corrected_on = r.rec.corrected_on
        if r.day > self.as_of_ord:
            status = Status.PENDING
        elif corrected_on is not None:
            status = Status.PENDING if corrected_on >= self.start else Status.MANUAL
        else:
            status = Status.PENDING if r.day >= self.start_ord else Status.NOT_FOUND
        self.receipt_out[r.rec.sale_id] = _UNPAIRED[status]
        self.receipt_counts[status] += 1

    def emit_unpaired_sale(self, s: _Sale) -> None:
        if s.day > self.as_of_ord:
            status = Status.PENDING
        else:
            status = Status.PENDING if s.day >= self.start_ord else Status.NOT_FOUND
            if s.events:
                status = _event_status(s.events, status)
        o = _UNPAIRED[status]
        rows = s.all_rows()
        for row in rows:
            self.statement_out[row.record_id] = o
        self.statement_counts[status] += len(rows)

    # -- buckets: every record with both NSU and authorization code

    def bucket(self, recs: Any, rows: Any) -> None:
        """One (establishment, NSU, authorization) bucket: dedupe, group, rule (a)."""
        A = self.as_of_ord
        if recs is None:
            self.left_sales.extend(self.sales_of(rows if type(rows) is list else [rows]))
            return
        if rows is None:
            self.left_recs.extend(self.recs_of(recs if type(recs) is list else [recs]))
            return
        if type(recs) is not list:
            rows = rows if type(rows) is list else [rows]
            if self.try_pair(recs, rows, RULE_A):
                return
            recs = [recs]
        elif type(rows) is not list:
            rows = [rows]
        r_list = self.recs_of(recs)
        s_list = self.sales_of(rows)
        live_r = [r for r in r_list if r.day <= A]
        live_s = [s for s in s_list if s.day <= A]
        if live_r and live_s:
            self.greedy(live_r, live_s, RULE_A, max_days=1)
            left_r = [r for r in live_r if id(r) not in self.paired]
            left_s = [s for s in live_s if s.pair is None]
            if len(left_r) == 1 and len(left_s) == 1:
                self.pair(left_r[0], left_s[0], RULE_A_DATE)
        for r in r_list:
            pair = self.paired.pop(id(r), None)
            if pair is None:
                self.left_recs.append(r)
            else:
                s, rule = pair
                self.emit_pair(r.rec, (r.nsu, r.auth), s.primary, (s.nsu, s.auth), s.rows, s.events, rule)
        self.left_sales.extend(s for s in s_list if s.pair is None)

    def try_pair(self, rec: Receipt, rows: list[StatementRow], rule: str) -> bool:
        """Pair one receipt with the rows of its bucket when they are exactly one plain sale.

        No duplicate can hide there (a copy would share the bucket), nothing else competes for
        them, and both are dated up to `as_of`; otherwise the bucket takes the general path.
        """
        if len(rows) == 1:
            if rows[0].event_type is not _SALE:
                return False
        elif _one_plain_sale(rows):
            rows.sort(key=_NUMBER)
        else:
            return False
        primary = rows[0]
        r_day = rec.sale_datetime.astimezone(self.zone).toordinal()
        s_day = primary.sale_date.toordinal()
        if r_day > self.as_of_ord or s_day > self.as_of_ord:
            return False
        if rule is RULE_A and not -1 <= r_day - s_day <= 1:
            rule = RULE_A_DATE
        r_ids = (_ident(rec.nsu), _ident(rec.authorization_code))
        s_ids = (_ident(primary.nsu), _ident(primary.authorization_code))
        self.emit_pair(rec, r_ids, primary, s_ids, rows, [], rule)
        return True

    def recs_of(self, recs: list[Receipt]) -> list[_Rec]:
        """Receipts of one group, without their duplicates."""
        if len(recs) > 1:
            copies = self.duplicates(
                _duplicate_groups(recs, _RECEIPT_QUICK, _RECEIPT_CONTENT, _SALE_ID), True
            )
            if copies:
                gone = set(map(id, copies))
                recs = [r for r in recs if id(r) not in gone]
        return [_Rec(r, self.day_of(r)) for r in recs]

    def sales_of(self, rows: list[StatementRow]) -> list[_Sale]:
        """Retorno rows of one group, without their duplicates, as sales."""
        if len(rows) > 1:
            copies = self.duplicates(_duplicate_groups(rows, _ROW_QUICK, _ROW_CONTENT, _RECORD_ID), False)
            if copies:
                gone = set(map(id, copies))
                rows = [r for r in rows if id(r) not in gone]
        return _group_sales(rows)

    # -- pairing on the general path

    def pair(self, r: _Rec, s: _Sale, rule: str) -> None:
        self.paired[id(r)] = (s, rule)
        s.pair = r

    def is_free(self, r: _Rec) -> bool:
        return id(r) not in self.paired

    def greedy(self, rs: list[_Rec], ss: list[_Sale], rule: str, max_days: int | None) -> None:
        """Several candidates in one bucket: closest agreement first, ids break ties."""
        if len(rs) * len(ss) > GREEDY_LIMIT:
            # Identifiers shared by this many records are placeholders ("0", "000000"), not
            # evidence: only records that also agree on the amount compete, in smaller groups;
            # a group still too large stays unpaired rather than compared all against all.
            r_by_amount: dict[int, list[_Rec]] = {}
            for r in rs:
                r_by_amount.setdefault(r.rec.amount_cents, []).append(r)
            s_by_amount: dict[int, list[_Sale]] = {}
            for s in ss:
                s_by_amount.setdefault(s.primary.sale_amount_cents, []).append(s)
            for amount in sorted(r_by_amount.keys() & s_by_amount.keys()):
                sub_r, sub_s = r_by_amount[amount], s_by_amount[amount]
                if len(sub_r) * len(sub_s) <= GREEDY_LIMIT:
                    self.greedy(sub_r, sub_s, rule, max_days)
            return
        zone = self.zone
        candidates = []
        for r in rs:
            if not self.is_free(r):
                continue
            for s in ss:
                if s.pair is not None:
                    continue
                days = abs(r.day - s.day)
                if max_days is not None and days > max_days:
                    continue
                sts = s.timestamp(zone)
                seconds = abs(r.timestamp() - sts) if sts is not None else 0.0
                candidates.append(
                    (
                        _mismatches(r.rec, s.primary),
                        days,
                        seconds,
                        id_sort_key(r.rec.sale_id),
                        id_sort_key(s.primary.record_id),
                        r,
                        s,
                    )
                )
        candidates.sort(key=lambda c: c[:5])
        for *_, r, s in candidates:
            if self.is_free(r) and s.pair is None:
                self.pair(r, s, rule)

    def general(self) -> None:
        """Rules (b) and (c) over what the buckets left, then every remaining output."""
        A = self.as_of_ord
        live_r = [r for r in self.left_recs if r.day <= A]
        live_s = [s for s in self.left_sales if s.day <= A]
        self.rule_b(live_r, live_s, "nsu", RULE_B_NSU)
        self.rule_b(live_r, live_s, "auth", RULE_B_AUTH)
        self.rule_c_txid(live_r, live_s)
        self.rule_c_time(live_r, live_s)
        for r in self.left_recs:
            pair = self.paired.get(id(r))
            if pair is None:
                self.emit_unpaired_receipt(r)
            else:
                s, rule = pair
                self.emit_pair(r.rec, (r.nsu, r.auth), s.primary, (s.nsu, s.auth), s.rows, s.events, rule)
        for s in self.left_sales:
            if s.pair is None:
                self.emit_unpaired_sale(s)

    def rule_b(self, rs: list[_Rec], ss: list[_Sale], field: str, rule: str) -> None:
        get = attrgetter(field)
        r_index: dict[tuple[str, str, int], list[_Rec]] = {}
        for r in rs:
            value = get(r)
            if value is not None and self.is_free(r):
                rec = r.rec
                r_index.setdefault((rec.establishment_code, value, rec.amount_cents), []).append(r)
        s_index: dict[tuple[str, str, int], list[_Sale]] = {}
        for s in ss:
            value = get(s)
            if value is not None and s.pair is None:
                key = (s.primary.establishment_code, value, s.primary.sale_amount_cents)
                if key in r_index:
                    s_index.setdefault(key, []).append(s)
        for key, s_list in s_index.items():
            for r, s in _unique_pairs(r_index[key], s_list, _DAY, _DAY, 1):
                self.pair(r, s, rule)

    def rule_c_txid(self, rs: list[_Rec], ss: list[_Sale]) -> None:
        r_index: dict[tuple[str, str], list[_Rec]] = {}
        for r in rs:
            txid = r.rec.txid
            if txid is not None and self.is_free(r):
                r_index.setdefault((r.rec.establishment_code, txid.lower()), []).append(r)
        s_index: dict[tuple[str, str], list[_Sale]] = {}
        for s in ss:
            if s.txid is not None and s.pair is None:
                key = (s.primary.establishment_code, s.txid)
                if key in r_index:
                    s_index.setdefault(key, []).append(s)
        for key, s_list in s_index.items():
            r_list = r_index[key]
            if len(r_list) == 1 and len(s_list) == 1:
                self.pair(r_list[0], s_list[0], RULE_C_TXID)
            else:
                self.greedy(r_list, s_list, RULE_C_TXID, max_days=None)

    def rule_c_time(self, rs: list[_Rec], ss: list[_Sale]) -> None:
        zone = self.zone
        r_index: dict[tuple[str, int], list[_Rec]] = {}
        for r in rs:
            rec = r.rec
            if rec.txid is None and rec.payment_type in _INSTANT_TYPES and self.is_free(r):
                r_index.setdefault((rec.establishment_code, rec.amount_cents), []).append(r)
        s_index: dict[tuple[str, int], list[_Sale]] = {}
        for s in ss:
            p = s.primary
            if (
                s.pair is None
                and s.txid is None
                and p.payment_type in _INSTANT_TYPES
                and p.sale_time is not None
            ):
                key = (p.establishment_code, p.sale_amount_cents)
                if key in r_index:
                    s_index.setdefault(key, []).append(s)
        for key, s_list in s_index.items():
            found = _unique_pairs(
                r_index[key],
                s_list,
                _Rec.timestamp,
                lambda s: s.timestamp(zone) or 0.0,
                PIX_TIME_TOLERANCE_SECONDS,
            )
            for r, s in found:
                if not _identifiers_contradict(r, s):
                    self.pair(r, s, RULE_C_TIME)


def _identifiers_contradict(r: _Rec, s: _Sale) -> bool:
    """Both identifiers on both sides, both different: two different sales."""
    return None not in (r.nsu, r.auth, s.nsu, s.auth) and r.nsu != s.nsu and r.auth != s.auth


_new = tuple.__new__
_DAY = attrgetter("day")
_SALE_ID = attrgetter("sale_id")
_RECORD_ID = attrgetter("record_id")
_UNPAIRED = {status: Outcome(status, (), (), "") for status in Status}


def reconcile(
    receipts: Iterable[Receipt],
    statement_rows: Iterable[StatementRow],
    *,
    as_of: date,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    tz: tzinfo | None = None,
) -> ReconResult:
    """Reconcile ERP receipts against retorno rows as of the business date `as_of`.

    Ids must be unique on each side (`ValueError` otherwise): the importers drop a retorno row
    whose record_id was already seen. `tz` is the business time zone (America/Sao_Paulo).
    """
    receipt_list = receipts if isinstance(receipts, list) else list(receipts)
    row_list = statement_rows if isinstance(statement_rows, list) else list(statement_rows)
    # Hundreds of thousands of small containers, none cyclic: the cyclic collector would only
    # rescan them again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _reconcile(receipt_list, row_list, as_of, lookback_days, tz or business_tz())
    finally:
        if collecting:
            gc.enable()


def _reconcile(
    receipts: list[Receipt], rows: list[StatementRow], as_of: date, lookback_days: int, zone: tzinfo
) -> ReconResult:
    run = _Run(as_of, lookback_days, zone)
    # Both NSU and authorization: rule (a) buckets. Neither, but a txid: txid buckets (no rule
    # before (c) can touch them). Anything else: the general path.
    buckets: dict[tuple[str, ...], list[Any]] = {}
    txid_buckets: dict[tuple[str, ...], list[Any]] = {}
    other_recs: list[Receipt] = []
    other_rows: list[StatementRow] = []
    _index(receipts, 0, buckets, txid_buckets, other_recs)
    _index(rows, 1, buckets, txid_buckets, other_rows)

    # The common bucket, inline: one receipt, one retorno sale row, both dated up to `as_of`,
    # dates at most a day apart and nothing differing. Anything else goes to `run.bucket`.
    bucket = run.bucket
    new = tuple.__new__
    receipt_out, statement_out = run.receipt_out, run.statement_out
    as_of_ord = run.as_of_ord
    matched, sale_event = Status.MATCHED, _SALE
    fast = 0
    for recs, bucket_rows in buckets.values():
        if (
            type(recs) is Receipt
            and type(bucket_rows) is StatementRow
            and bucket_rows.event_type is sale_event
        ):
            rec, row = recs, bucket_rows
            s_day = row.sale_date.toordinal()
            r_day = rec.sale_datetime.astimezone(zone).toordinal()
            if (
                r_day <= as_of_ord
                and s_day <= as_of_ord
                and -1 <= r_day - s_day <= 1
                and rec.amount_cents == row.sale_amount_cents
                and rec.installments == row.installments
                and rec.brand == row.brand
                and rec.payment_type is row.payment_type
            ):
                sale_id, record_id = rec.sale_id, row.record_id
                receipt_out[sale_id] = new(Outcome, (matched, (), (record_id,), RULE_A))
                statement_out[record_id] = new(Outcome, (matched, (), (sale_id,), RULE_A))
                fast += 1
                continue
        bucket(recs, bucket_rows)
    run.receipt_counts[matched] += fast
    run.statement_counts[matched] += fast
    run.pairs += fast
    try_pair = run.try_pair
    for recs, bucket_rows in txid_buckets.values():
        if type(recs) is Receipt and bucket_rows is not None:
            bucket_rows = bucket_rows if type(bucket_rows) is list else [bucket_rows]
            if try_pair(recs, bucket_rows, RULE_C_TXID):
                continue
        for found, other in ((recs, other_recs), (bucket_rows, other_rows)):
            if type(found) is list:
                other.extend(found)
            elif found is not None:
                other.append(found)
    run.left_recs.extend(run.recs_of(other_recs))
    run.left_sales.extend(run.sales_of(other_rows))
    run.general()

    _check_counts(receipts, run.receipt_out, _SALE_ID, "sale_id")
    _check_counts(rows, run.statement_out, _RECORD_ID, "record_id")
    return ReconResult(
        as_of=as_of,
        lookback_days=lookback_days,
        receipts=run.receipt_out,
        statement=run.statement_out,
        receipt_status_counts=run.receipt_counts,
        statement_status_counts=run.statement_counts,
        divergence_counts=run.divergence_counts,
        pairs=run.pairs,
    )


def _index(
    records: list[Any],
    side: int,
    by_ids: dict[tuple[str, ...], list[Any]],
    by_txid: dict[tuple[str, ...], list[Any]],
    others: list[Any],
) -> None:
    """Put each record in its bucket, at `side` (0: receipts, 1: retorno rows)."""
    get_ids, get_txid = by_ids.get, by_txid.get
    for rec in records:
        nsu, auth = rec.nsu, rec.authorization_code
        if nsu is not None and auth is not None:
            key: tuple[str, ...] = (rec.establishment_code, nsu.lstrip("0") or "0", auth.lstrip("0") or "0")
            b = get_ids(key)
            target = by_ids
        elif nsu is None and auth is None and rec.txid is not None:
            key = (rec.establishment_code, rec.txid.lower())
            b = get_txid(key)
            target = by_txid
        else:
            others.append(rec)
            continue
        if b is None:
            target[key] = [rec, None] if side == 0 else [None, rec]
        else:
            seen = b[side]
            if seen is None:
                b[side] = rec
            elif type(seen) is list:
                seen.append(rec)
            else:
                b[side] = [seen, rec]


def _check_counts(
    records: list[Any], out: dict[str, Outcome], get_id: Callable[[Any], str], what: str
) -> None:
    """Every record has exactly one outcome unless two records share an id."""
    if len(out) != len(records):
        seen: set[str] = set()
        repeated = {i for i in map(get_id, records) if i in seen or seen.add(i)}  # type: ignore[func-returns-value]
        listed = ", ".join(sorted(repeated, key=id_sort_key)[:5])
        raise ValueError(f"{what} repetido: {listed}")
