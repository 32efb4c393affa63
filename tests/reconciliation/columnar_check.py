"""Runs the columnar matcher beside `reconcile()` and asserts they agree record by record."""

from __future__ import annotations

from datetime import date

from reconciliation.frames import receipts_frame, result_frame, statement_frame
from reconciliation.matcher import ReconResult, reconcile
from reconciliation.matcher_columnar import FrameResult, reconcile_frames
from reconciliation.records import Receipt, StatementRow


def both_matchers(
    receipts: list[Receipt], rows: list[StatementRow], *, as_of: date, lookback_days: int = 3
) -> tuple[ReconResult, FrameResult]:
    """`reconcile()` and `reconcile_frames()` on the same records, checked equal."""
    expected = reconcile(receipts, rows, as_of=as_of, lookback_days=lookback_days)
    got = reconcile_frames(
        receipts_frame(receipts), statement_frame(rows), as_of=as_of, lookback_days=lookback_days
    )
    want = result_frame(expected, receipts, rows).sort("kind", "id")
    have = got.frame.sort("kind", "id")
    assert have.height == want.height
    if not have.equals(want):
        diff = have.join(want, on=["kind", "id"], how="full", suffix="_expected")
        wrong = [
            row
            for row in diff.iter_rows(named=True)
            if any(
                row[c] != row[f"{c}_expected"] for c in ("status", "divergences", "counterpart_ids", "rule")
            )
        ]
        raise AssertionError(f"{len(wrong)} records differ, e.g. {wrong[:3]}")
    assert got.receipt_status_counts == expected.receipt_status_counts
    assert got.statement_status_counts == expected.statement_status_counts
    assert got.divergence_counts == expected.divergence_counts
    assert got.pairs == expected.pairs
    assert got.summary() == expected.summary()
    return expected, got
