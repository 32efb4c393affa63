"""Helpers for the reconciliation database tests: hand-written CSV files, counts, exports."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from onboarding import db
from reconciliation.models import ImportBatch, ImportRowError, Result, StoredReceipt, StoredStatementRow

SALES_COLUMNS = (
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
RETORNO_COLUMNS = (
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


AMOUNT_COLUMNS = frozenset({"amount", "sale_amount", "gross_amount", "fee_amount", "net_amount"})


def sale(sale_id: str, **overrides: Any) -> dict[str, str]:
    row = {
        "sale_id": sale_id,
        "establishment_code": "1020304050",
        "sale_datetime": "2025-03-10T14:30:00",
        "amount": "100.00",
        "payment_type": "credit",
        "brand": "visa",
        "acquirer": "cielo",
        "installments": "1",
        "authorization_code": f"A{sale_id}",
        "nsu": f"9{sale_id}",
        "origin": "sale",
    }
    row.update({k: str(v) for k, v in overrides.items()})
    return row


def retorno(record_id: str, sale_id: str, **overrides: Any) -> dict[str, str]:
    """A one-installment retorno row matching `sale(sale_id)` by default."""
    row = {
        "record_id": record_id,
        "establishment_code": "1020304050",
        "acquirer": "cielo",
        "brand": "visa",
        "payment_type": "credit",
        "sale_date": "2025-03-10",
        "sale_time": "14:30:05",
        "authorization_code": f"A{sale_id}",
        "nsu": f"9{sale_id}",
        "tid": "",
        "txid": "",
        "installments": "1",
        "installment_number": "1",
        "sale_amount": "100.00",
        "gross_amount": "100.00",
        "fee_amount": "2.00",
        "net_amount": "98.00",
        "expected_payment_date": "2025-04-09",
        "event_type": "sale",
    }
    row.update({k: str(v) for k, v in overrides.items()})
    return row


def write_csv(
    path: Path,
    columns: tuple[str, ...] | list[str],
    rows: list[dict[str, str]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> Path:
    """A CSV file; in the `;` dialect amounts written with `.` decimals get a decimal comma."""
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            values = []
            for column in columns:
                value = row.get(column, "")
                if delimiter == ";" and column in AMOUNT_COLUMNS and "," not in value:
                    value = value.replace(".", ",")
                values.append(value)
            writer.writerow(values)
    return path


def last_json(output: str) -> dict[str, Any]:
    return json.loads(output.strip().splitlines()[-1])


def counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        session = db.session()
        return {
            model.__tablename__: session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
            for model in (StoredReceipt, StoredStatementRow, ImportBatch, ImportRowError, Result)
        }


def read_export(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["kind", "id", "status", "divergences", "counterpart_ids", "rule"]
        rows: dict[tuple[str, str], dict[str, str]] = {}
        for row in reader:
            key = (row["kind"], row["id"])
            assert key not in rows, f"{key} exported twice"
            rows[key] = row
        return rows
