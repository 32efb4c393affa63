"""A stand-in for the integrator (Boavista) on the folder exchange, for the demo and the tests.

It reads each remessa in `outbox/`, answers it with a retorno in `inbox/` (written atomically) and
moves the remessa to `outbox/taken/`, as the integrator would pick it up. What the acquirer knows
about each sale is decided once, the first time the sale is seen, from the seed and the sale's
establishment and id (so the same seed replays the same story), and kept in
`.integrator/state.json` beside the exchange folders:

- most sales come back at once, some with an acquirer-side divergence drawn by
  `synth.retorno_for` (another authorization code, NSU, amount, installments, brand, a
  cancellation, a chargeback, a duplicated row...);
- `unidentified`: the ERP typed both the NSU and the authorization code wrong, so the integrator
  cannot find the sale; it comes back once a corrected receipt with one of the true identifiers is
  sent again (`acquirer_identifiers` tells a test or the demo what the card slip says);
- `lost`: the acquirer never had the sale; no correction will make it come back;
- now and then the acquirer reports a sale the ERP does not have.

A sale is answered once: resending it adds no rows, as a real integrator does not repeat rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from reconciliation import csvformat, records, synth
from reconciliation.exchange import INBOX, OUTBOX, visible, write_atomically

STATE_DIR = ".integrator"
TAKEN = "taken"
OK = "ok"
UNIDENTIFIED = "unidentified"
LOST = "lost"
ACQUIRER_FAULTS: tuple[str, ...] = tuple(f for f in synth.RETORNO_FAULTS if f != synth.MISSING_RETORNO)
BEHAVIOURS = (OK, UNIDENTIFIED, LOST, *ACQUIRER_FAULTS)
FIRST_RECORD_ID = 7_000_000_001


@dataclass
class SimulationReport:
    remessas: list[str] = field(default_factory=list)
    retornos: list[str] = field(default_factory=list)
    receipts: int = 0
    rows: int = 0
    refused_lines: int = 0
    behaviours: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "remessas": len(self.remessas),
            "receipts": self.receipts,
            "retornos": self.retornos,
            "rows": self.rows,
            "refused_lines": self.refused_lines,
            "behaviours": dict(sorted(self.behaviours.items())),
        }


class IntegratorSimulator:
    def __init__(
        self,
        exchange_dir: Path | str,
        *,
        seed: int = 1,
        tz: ZoneInfo | None = None,
        fault_rate: float = 0.12,
        unidentified_rate: float = 0.04,
        lost_rate: float = 0.02,
        extra_sale_rate: float = 0.25,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        """`overrides` forces the behaviour of given sale ids (one of `BEHAVIOURS`)."""
        self.base = Path(exchange_dir).resolve()
        self.seed = seed
        self.tz = tz or records.business_tz()
        self.fault_rate = fault_rate
        self.unidentified_rate = unidentified_rate
        self.lost_rate = lost_rate
        self.extra_sale_rate = extra_sale_rate
        self.overrides = dict(overrides or {})
        unknown = set(self.overrides.values()) - set(BEHAVIOURS)
        if unknown:
            raise ValueError(f"unknown behaviours: {sorted(unknown)}")
        self.outbox = self.base / OUTBOX
        self.inbox = self.base / INBOX
        self.state_path = self.base / STATE_DIR / "state.json"
        for folder in (self.outbox / TAKEN, self.inbox, self.state_path.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.state = self._load_state()

    # -- state --------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        if self.state_path.exists():
            state: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
            return state
        return {"seed": self.seed, "next_record_id": FIRST_RECORD_ID, "retorno_seq": 0, "sales": {}}

    def _save_state(self) -> None:
        data = json.dumps(self.state, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
        write_atomically(self.state_path, data)

    def _rng(self, *parts: object) -> random.Random:
        digest = hashlib.sha256(":".join(str(p) for p in (self.seed, *parts)).encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def acquirer_identifiers(self, establishment: str, sale_id: str) -> tuple[str | None, str | None] | None:
        """(NSU, authorization code) as the acquirer has them for an unidentified sale, else None."""
        sale = self.state["sales"].get(_key(establishment, sale_id))
        if sale is None or sale.get("nsu") is None:
            return None
        return sale["nsu"], sale["auth"]

    def behaviour_of(self, establishment: str, sale_id: str) -> str | None:
        sale = self.state["sales"].get(_key(establishment, sale_id))
        return None if sale is None else str(sale["behaviour"])

    # -- one pass -----------------------------------------------------------------------------

    def run_once(self) -> SimulationReport:
        """Answer every remessa waiting in the outbox; returns what was done."""
        report = SimulationReport()
        names = sorted(
            e.name for e in os.scandir(self.outbox) if e.is_file(follow_symlinks=False) and visible(e.name)
        )
        for name in names:
            if not name.lower().endswith(".csv"):
                continue
            self._answer(name, report)
        return report

    def _answer(self, name: str, report: SimulationReport) -> None:
        path = self.outbox / name
        receipts: list[records.Receipt] = []
        with path.open("rb") as stream:
            try:
                for _line, item in csvformat.read_receipts(stream, self.tz):
                    if isinstance(item, csvformat.RowError):
                        report.refused_lines += 1
                    else:
                        receipts.append(item)
            except csvformat.FormatError:
                report.refused_lines += 1
        rows: list[records.StatementRow] = []
        for receipt in receipts:
            rows.extend(self._rows_for(receipt, report))
        rows.extend(self._extra_sales(name, receipts))
        self.state["retorno_seq"] += 1
        seq = self.state["retorno_seq"]
        stem = name[:-4].removeprefix("REMESSA_")
        retorno_name = f"RETORNO_{stem}_{seq:04d}.csv"
        text = io.StringIO(newline="")
        delimiter = ";" if seq % 2 == 0 else ","  # the integrator's files come in both dialects
        csvformat.write_statement_csv(rows, text, delimiter=delimiter)
        # The state first: a crash after it loses a retorno (as a real outage would), never repeats rows.
        self._save_state()
        write_atomically(self.inbox / retorno_name, text.getvalue().encode("utf-8"))
        os.replace(path, _free_name(self.outbox / TAKEN, name))
        report.remessas.append(name)
        report.retornos.append(retorno_name)
        report.receipts += len(receipts)
        report.rows += len(rows)

    def _behaviour(self, receipt: records.Receipt) -> str:
        forced = self.overrides.get(receipt.sale_id)
        if forced is not None:
            return forced
        card = receipt.nsu is not None and receipt.authorization_code is not None
        draw = self._rng("behaviour", receipt.establishment_code, receipt.sale_id).random()
        if card and draw < self.unidentified_rate:
            return UNIDENTIFIED
        if draw < self.unidentified_rate + self.lost_rate:
            return LOST
        if draw < self.unidentified_rate + self.lost_rate + self.fault_rate:
            faults = ACQUIRER_FAULTS
            return self._rng("fault", receipt.establishment_code, receipt.sale_id).choice(faults)
        return OK

    def _rows_for(self, receipt: records.Receipt, report: SimulationReport) -> list[records.StatementRow]:
        key = _key(receipt.establishment_code, receipt.sale_id)
        sale = self.state["sales"].get(key)
        if sale is None:
            behaviour = self._behaviour(receipt)
            report.behaviours[behaviour] = report.behaviours.get(behaviour, 0) + 1
            sale = {"behaviour": behaviour, "answered": False}
            if behaviour == UNIDENTIFIED:
                rng = self._rng("truth", key)
                sale["nsu"] = str(rng.randrange(10**8, 10**9))
                sale["auth"] = f"{rng.randrange(36**5, 36**6):X}"[-6:]
            self.state["sales"][key] = sale
            if behaviour in (LOST, UNIDENTIFIED):
                return []
            sale["answered"] = True
            fault = None if behaviour == OK else behaviour
            return self._acquirer_rows(receipt, key, fault)
        if sale["answered"] or sale["behaviour"] != UNIDENTIFIED:
            return []
        if receipt.nsu != sale["nsu"] and receipt.authorization_code != sale["auth"]:
            return []  # still cannot be identified
        sale["answered"] = True
        truth = replace(receipt, nsu=sale["nsu"], authorization_code=sale["auth"])
        return self._acquirer_rows(truth, key, None)

    def _acquirer_rows(
        self, receipt: records.Receipt, key: str, fault: str | None
    ) -> list[records.StatementRow]:
        first = int(self.state["next_record_id"])
        data = synth.retorno_for(
            [receipt],
            seed=self._rng("rows", key).randrange(2**31),
            fault_rate=1.0 if fault else 0.0,
            faults=(fault,) if fault else synth.RETORNO_FAULTS,
            first_record_id=first,
            tz=self.tz,
        )
        rows = data.statement_rows
        if rows:
            self.state["next_record_id"] = max(int(r.record_id) for r in rows) + 1
        return rows

    def _extra_sales(self, remessa: str, receipts: list[records.Receipt]) -> list[records.StatementRow]:
        """Sometimes the acquirer has a sale the ERP never registered."""
        rng = self._rng("extra", remessa, len(self.state["sales"]))
        if not receipts or rng.random() >= self.extra_sale_rate:
            return []
        model = rng.choice(receipts)
        day = model.local_date(self.tz)
        sample = synth.generate(
            1,
            seed=rng.randrange(2**31),
            start_date=day,
            days=1,
            establishments=[model.establishment_code],
            tz=self.tz,
        )
        if not sample.receipts:
            return []
        ghost = replace(sample.receipts[0], acquirer=model.acquirer, sale_id=f"extra-{remessa}")
        key = _key(ghost.establishment_code, ghost.sale_id)
        if key in self.state["sales"]:
            return []
        self.state["sales"][key] = {"behaviour": "extra", "answered": True}
        return self._acquirer_rows(ghost, key, None)


def _key(establishment: str, sale_id: str) -> str:
    return f"{establishment.strip().upper()}|{sale_id.strip()}"


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    n = 0
    while target.exists():
        n += 1
        target = folder / f"{name}.{n}"
    return target


def read_retorno_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a retorno file as dicts (either dialect), for tests and the demo."""
    raw = path.read_text(encoding="utf-8")
    delimiter = ";" if raw.split("\n", 1)[0].count(";") > raw.split("\n", 1)[0].count(",") else ","
    return list(csv.DictReader(io.StringIO(raw), delimiter=delimiter))
