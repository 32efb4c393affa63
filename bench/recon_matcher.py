"""Benchmark: the pure matcher against a bare polars inner join of the same two tables.

    python bench/recon_matcher.py [--receipts 200000] [--seed 20240301] [--repeat 5]

Generates the receipts and their retorno with a fixed seed (`reconciliation.synth`), builds the
two tables once (`reconciliation.frames`: every column of a receipt, every column of a retorno
row; the build is timed apart), then times on those same tables, in the same run, best of
`--repeat`:
- the pure matcher, `matcher_columnar.reconcile_frames()`;
- the bare polars inner join of the two tables on (establishment, NSU, authorization code);
- for reference, `matcher.reconcile()` over the record lists.
Prints the figures and the ratio matcher / join (SPEC section 9: within 3x); never fails on a
timing. Timings are noisy on a shared machine: CPU seconds are printed beside wall seconds.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciliation.frames import receipts_frame, statement_frame
from reconciliation.matcher import reconcile
from reconciliation.matcher_columnar import reconcile_frames
from reconciliation.synth import generate

JOIN_KEYS = ["establishment_code", "nsu", "authorization_code"]


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(best wall seconds, CPU seconds of that run, last result)."""
    best_wall, best_cpu, result = float("inf"), 0.0, None
    for _ in range(repeat):
        result = None
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = fn()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if wall < best_wall:
            best_wall, best_cpu = wall, cpu
    return best_wall, best_cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--receipts", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20240301)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    args = parser.parse_args()

    start, days = date(2024, 3, 1), 10
    as_of = start + timedelta(days=days - 1)
    t0 = time.perf_counter()
    data = generate(args.receipts, args.seed, start, days, 20, fault_rate=args.fault_rate, as_of=as_of)
    receipts, rows = data.receipts, data.statement_rows
    print(
        f"data: {len(receipts):,} receipts, {len(rows):,} retorno rows "
        f"(seed {args.seed}, fault rate {args.fault_rate}), generated in {time.perf_counter() - t0:.1f} s"
    )

    build_wall, _, tables = best_of(1, lambda: (receipts_frame(receipts), statement_frame(rows)))
    left, right = tables
    print(
        f"tables:             {build_wall:7.3f} s wall to build from the record lists "
        f"({left.width} and {right.width} columns)"
    )
    # Interleaved, so that both see the same machine.
    match_wall = join_wall = float("inf")
    match_cpu = join_cpu = 0.0
    result = joined = None
    for _ in range(args.repeat):
        wall, cpu, result = best_of(1, lambda: reconcile_frames(left, right, as_of=as_of, lookback_days=3))
        if wall < match_wall:
            match_wall, match_cpu = wall, cpu
        wall, cpu, joined = best_of(1, lambda: left.join(right, on=JOIN_KEYS, how="inner"))
        if wall < join_wall:
            join_wall, join_cpu = wall, cpu
    old_wall, old_cpu, old = best_of(
        min(args.repeat, 3), lambda: reconcile(receipts, rows, as_of=as_of, lookback_days=3)
    )

    assert result is not None and joined is not None and old is not None
    rate = len(receipts) / match_wall
    print(
        f"matcher (columnar): {match_wall:7.3f} s wall, {match_cpu:7.3f} s CPU  ({rate:,.0f} receipts/s; "
        f"{result.python_records:,} records left to reconcile())"
    )
    print(
        f"polars inner join:  {join_wall:7.3f} s wall, {join_cpu:7.3f} s CPU  ({joined.height:,} joined rows)"
    )
    print(f"reconcile() on the record lists, for reference: {old_wall:7.3f} s wall, {old_cpu:7.3f} s CPU")
    print(
        f"ratio matcher / join:  {match_wall / join_wall:5.1f}x wall, {match_cpu / join_cpu:5.1f}x CPU"
        "  (target: within 3x)"
    )
    print(f"ratio reconcile() / join: {old_wall / join_wall:5.1f}x wall")
    print(f"same summary as reconcile(): {result.summary() == old.summary()}")
    counts = {k.value: v for k, v in result.receipt_status_counts.items() if v}
    print(f"pairs: {result.pairs:,}; receipts by status: {counts}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
