"""`recon run`: load the stored records, call the pure matcher, store the results, record the run.

Correctness first: the stored results are exactly what `matcher.reconcile()` returns on all the
records of each establishment (computed by its columnar twin, `matcher_columnar`, over frames
read straight from the database). Pairing never crosses establishments, so the work is done one
group of establishments at a time (bounded memory) and an establishment whose data and as-of did
not change since its results were computed is not loaded at all: every import or correction
touching it bumps its `data_version`, and the results remember the (as-of, look-back, data
version) they were computed for. `force=True` recomputes everything (the reproducibility check).
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from onboarding import db as desk_db
from onboarding.db import utcnow
from onboarding.errors import NotFound
from reconciliation import clock, matcher_columnar, records, store
from reconciliation.models import Establishment, Result, Run, StoredReceipt, StoredStatementRow

CHUNK_RECORDS = 300_000
INTERRUPTED_RUN_GRACE = timedelta(minutes=1)
INTERRUPTED_RUN_ERROR = "Interrompida: o processo terminou antes de concluir a execução."
STATUSES = tuple(s.value for s in records.Status)
DIVERGENCES = tuple(d.value for d in records.Divergence)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Settings:
    tz: ZoneInfo
    lookback_days: int


def settings() -> Settings:
    config = current_app.config
    return Settings(
        tz=records.business_tz(config.get("TIMEZONE") or records.BUSINESS_TIMEZONE),
        lookback_days=int(config.get("RECON_LOOKBACK_DAYS", 3)),
    )


@dataclass
class Counts:
    """Counts per status (both kinds and each kind) and per divergence, from stored results."""

    status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    sales: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    statements: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    divergences: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIVERGENCES, 0))
    sale_divergences: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIVERGENCES, 0))

    @property
    def receipts(self) -> int:
        return sum(self.sales.values())

    @property
    def statement_rows(self) -> int:
        return sum(self.statements.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "receipts": self.receipts,
            "statement_rows": self.statement_rows,
            "status": self.status,
            "divergences": self.divergences,
            "sales": self.sales,
            "statements": self.statements,
            "sale_divergences": self.sale_divergences,
        }


@dataclass
class ChunkWrites:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0


@dataclass
class RunOutcome:
    run_id: int
    as_of: date
    establishment: str | None
    lookback_days: int
    counts: Counts
    reconciled: int
    unchanged: int
    duration_s: float
    result_digest: str
    writes: ChunkWrites

    def summary(self) -> dict[str, Any]:
        """The JSON line `recon run` prints."""
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "establishment": self.establishment,
            "lookback_days": self.lookback_days,
            **self.counts.as_dict(),
            "establishments_reconciled": self.reconciled,
            "establishments_unchanged": self.unchanged,
            "results_written": {
                "inserted": self.writes.inserted,
                "updated": self.writes.updated,
                "unchanged": self.writes.unchanged,
            },
            "duration_seconds": round(self.duration_s, 3),
            "result_digest": self.result_digest,
        }


def normalize_code(code: str | None) -> str | None:
    return records.norm_code(code) if code is not None else None


def run_reconciliation(
    *,
    as_of: date | None = None,
    establishment: str | None = None,
    force: bool = False,
    trigger: str = "cli",
    progress: Progress | None = None,
) -> RunOutcome:
    """One recorded run (needs an app context). The run row is committed first, so a failed run
    stays recorded as `failed` with its reason while its partial work is rolled back."""
    conf = settings()
    as_of = as_of or clock.today(conf.tz)
    code = normalize_code(establishment)
    with desk_db.session_scope() as db:
        mark_interrupted_runs(db)
        if code is not None and db.get(Establishment, code) is None:
            raise NotFound(
                "unknown_establishment",
                f"Nenhum recebimento ou retorno importado para o estabelecimento {code}.",
            )
        run = Run(as_of=as_of, establishment_code=code, lookback_days=conf.lookback_days, trigger=trigger)
        db.add(run)
        db.flush()
        run_id = run.id
    try:
        with desk_db.session_scope() as db:
            return reconcile_into(db, run_id, force=force, progress=progress, tz=conf.tz)
    except BaseException as error:
        with desk_db.session_scope() as db:
            failed = db.get(Run, run_id)
            if failed is not None:
                failed.status = "failed"
                failed.finished_at = utcnow()
                failed.error = f"{type(error).__name__}: {error}"[:2000]
        raise


def mark_interrupted_runs(db: Session) -> None:
    """Runs left `running` by a process that died (SIGKILL, a lost machine) become `failed`.

    A live run keeps its row locked for its whole work transaction (`reconcile_into` claims it
    first), so a `running` row that can be locked now has no process behind it. The grace period
    covers the instant between recording a run and claiming it. On SQLite the database write lock
    does the same: the update waits for a live run to commit, which leaves its row `finished`.
    """
    now = utcnow()
    orphans = (
        sa.select(Run.id)
        .where(Run.status == "running", Run.started_at < now - INTERRUPTED_RUN_GRACE)
        .with_for_update(skip_locked=True)
    )
    db.execute(
        sa.update(Run)
        .where(Run.id.in_(orphans.scalar_subquery()), Run.status == "running")
        .values(status="failed", finished_at=now, error=INTERRUPTED_RUN_ERROR)
        .execution_options(synchronize_session=False)
    )


def reconcile_into(
    db: Session, run_id: int, *, force: bool = False, progress: Progress | None = None, tz: ZoneInfo
) -> RunOutcome:
    """The work of run `run_id` inside the caller's transaction."""
    started = time.perf_counter()
    # Claim the run row: it stays locked until this transaction ends (see mark_interrupted_runs).
    db.execute(sa.update(Run).where(Run.id == run_id).values(status="running"))
    run = db.get(Run, run_id)
    if run is None:
        raise NotFound("run_not_found", f"Execução {run_id} não encontrada.")
    as_of, lookback = run.as_of, run.lookback_days
    query = sa.select(Establishment).order_by(Establishment.code).with_for_update()
    if run.establishment_code is not None:
        query = query.where(Establishment.code == run.establishment_code)
    scope = list(db.scalars(query))
    stale = [
        e
        for e in scope
        if force
        or (e.result_as_of, e.result_lookback_days, e.result_data_version)
        != (as_of, lookback, e.data_version)
    ]
    conn = db.connection()
    sizes = _record_counts(conn, [e.code for e in stale])
    writes = ChunkWrites()
    for chunk in _chunks(stale, sizes):
        has_results = any(e.result_digest is not None for e in chunk)
        digests = _reconcile_chunk(
            conn, [e.code for e in chunk], run_id, as_of, lookback, tz, writes, has_results
        )
        for est in chunk:
            est.result_run_id = run_id
            est.result_as_of = as_of
            est.result_lookback_days = lookback
            est.result_data_version = est.data_version
            est.result_digest = digests.get(est.code, _EMPTY_DIGEST)
        db.flush()
        if progress is not None:
            progress(sum(sizes.get(e.code, (0, 0))[0] for e in chunk))
    counts = count_results(db, run.establishment_code)
    digest = hashlib.sha256("".join(f"{e.code}:{e.result_digest}\n" for e in scope).encode()).hexdigest()
    duration = time.perf_counter() - started
    run.status = "finished"
    run.finished_at = utcnow()
    run.duration_ms = int(duration * 1000)
    run.receipts = counts.receipts
    run.statement_rows = counts.statement_rows
    run.establishments_reconciled = len(stale)
    run.establishments_unchanged = len(scope) - len(stale)
    run.status_counts = {"status": counts.status, "sales": counts.sales, "statements": counts.statements}
    run.divergence_counts = {"divergences": counts.divergences, "sales": counts.sale_divergences}
    run.result_digest = digest
    run.results_inserted = writes.inserted
    run.results_updated = writes.updated
    run.results_unchanged = writes.unchanged
    db.flush()
    return RunOutcome(
        run_id=run_id,
        as_of=as_of,
        establishment=run.establishment_code,
        lookback_days=lookback,
        counts=counts,
        reconciled=len(stale),
        unchanged=len(scope) - len(stale),
        duration_s=duration,
        result_digest=digest,
        writes=writes,
    )


_EMPTY_DIGEST = "0" * 16


def _record_counts(conn: sa.Connection, codes: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(receipts, retorno rows) per establishment."""
    if not codes:
        return {}
    receipts: dict[str, int] = {}
    rows: dict[str, int] = {}
    for table, target in ((StoredReceipt.__table__, receipts), (StoredStatementRow.__table__, rows)):
        stmt = sa.select(table.c.establishment_code, sa.func.count()).group_by(table.c.establishment_code)
        for est, n in conn.execute(stmt):
            target[est] = n
    return {c: (receipts.get(c, 0), rows.get(c, 0)) for c in codes}


def _chunks(stale: list[Establishment], sizes: dict[str, tuple[int, int]]) -> Iterator[list[Establishment]]:
    """Groups of establishments of at most CHUNK_RECORDS records (one bigger establishment alone)."""
    chunk: list[Establishment] = []
    total = 0
    for est in stale:
        n = sum(sizes.get(est.code, (0, 0)))
        if chunk and total + n > CHUNK_RECORDS:
            yield chunk
            chunk, total = [], 0
        chunk.append(est)
        total += n
    if chunk:
        yield chunk


def _reconcile_chunk(
    conn: sa.Connection,
    codes: list[str],
    run_id: int,
    as_of: date,
    lookback: int,
    tz: ZoneInfo,
    writes: ChunkWrites,
    has_results: bool,
) -> dict[str, str]:
    """Reconcile the establishments `codes` (one columnar run: pairing never crosses
    establishments) and store what changed in their results: new rows inserted, changed rows
    overwritten, unchanged rows left alone. Returns a digest of the results per establishment."""
    receipts = store.load_receipt_frame(conn, codes, tz)
    rows = store.load_statement_frame(conn, codes, tz)
    result = matcher_columnar.reconcile_frames(receipts, rows, as_of=as_of, lookback_days=lookback, tz=tz)
    del receipts, rows
    new = result.frame.rename({"id": "record_key"}).cast(store.RESULT_FRAME_SCHEMA)  # type: ignore[arg-type]
    digests = _digests(new, codes)
    if has_results:
        stored = store.load_result_frame(conn, codes)
        key = ["kind", "record_key"]
        both = new.join(stored, on=key, how="inner", suffix="_stored")
        same = pl.all_horizontal(pl.col(c) == pl.col(f"{c}_stored") for c in store.RESULT_TAIL_COLUMNS)
        writes.unchanged += both.filter(same).height
        changed = [
            (kind, record_key, est, (status, divs, counterparts, rule))
            for kind, record_key, est, status, divs, counterparts, rule in both.filter(~same)
            .select(new.columns)
            .iter_rows()
        ]
        writes.updated += store.update_results(conn, changed, run_id)
        vanished = stored.join(new, on=key, how="anti").select(key).rows()
        writes.deleted += store.delete_results(conn, vanished)
        new = new.join(stored, on=key, how="anti")
    writes.inserted += store.insert_result_frame(conn, new, run_id)
    return digests


def _digests(results: pl.DataFrame, codes: list[str]) -> dict[str, str]:
    """Per establishment, a digest of all its results: an order-independent sum of the CRC32 of
    each row's text, and the row count."""
    text = pl.concat_str(
        "kind",
        *(e for c in store.RESULT_TAIL_COLUMNS for e in (pl.lit("\t"), pl.col(c))),
        "record_key",
    )
    lines = results.select(text.cast(pl.Binary)).to_series().to_list()
    sums = (
        results.select("establishment_code")
        .with_columns(crc=pl.Series(list(map(zlib.crc32, lines)), dtype=pl.Int64))
        .group_by("establishment_code")
        .agg(total=pl.col("crc").sum(), count=pl.len())
    )
    found = {code: f"{total & 0xFFFFFFFFFFFFFFFF:016x}{count:08x}" for code, total, count in sums.iter_rows()}
    return {code: found.get(code, f"{0:016x}{0:08x}") for code in codes}


# --- reading results ---------------------------------------------------------------------------


def count_results(db: Session, establishment: str | None = None) -> Counts:
    table = Result.__table__
    stmt = sa.select(table.c.kind, table.c.status, table.c.divergences, sa.func.count()).group_by(
        table.c.kind, table.c.status, table.c.divergences
    )
    if establishment is not None:
        stmt = stmt.where(table.c.establishment_code == establishment)
    counts = Counts()
    for kind, status, divs, n in db.execute(stmt):
        counts.status[status] = counts.status.get(status, 0) + n
        per_kind = counts.sales if kind == records.Kind.SALE else counts.statements
        per_kind[status] = per_kind.get(status, 0) + n
        for div in divs.split("|") if divs else ():
            counts.divergences[div] = counts.divergences.get(div, 0) + n
            if kind == records.Kind.SALE:
                counts.sale_divergences[div] = counts.sale_divergences.get(div, 0) + n
    return counts


def latest_as_of(db: Session) -> date | None:
    return db.scalars(
        sa.select(Run.as_of).where(Run.status == "finished").order_by(Run.id.desc()).limit(1)
    ).first()


def results_are_current(db: Session, as_of: date, establishment: str | None, lookback: int) -> bool:
    query = sa.select(sa.func.count()).select_from(Establishment)
    if establishment is not None:
        query = query.where(Establishment.code == establishment)
    stale = query.where(
        sa.or_(
            Establishment.result_as_of.is_(None),
            Establishment.result_as_of != as_of,
            Establishment.result_lookback_days != lookback,
            Establishment.result_data_version != Establishment.data_version,
        )
    )
    return db.scalar(stale) == 0


def ensure_results(
    *,
    as_of: date | None = None,
    establishment: str | None = None,
    trigger: str = "export",
    verify: bool = False,
) -> date:
    """Make the stored results those of `as_of` (default: the as-of of the latest run, else
    today), running the reconciliation where they are not; returns the as-of used.

    `verify` also checks that every stored record has a result (a full run otherwise)."""
    conf = settings()
    code = normalize_code(establishment)
    force = False
    with desk_db.session_scope() as db:
        if as_of is None:
            as_of = latest_as_of(db) or clock.today(conf.tz)
        if code is not None and db.get(Establishment, code) is None:
            return as_of
        current = results_are_current(db, as_of, code, conf.lookback_days)
        if verify and current:
            stored = db.scalar(sa.select(sa.func.count()).select_from(Result)) or 0
            force = code is None and stored != sum(count_records(db))
            current = not force
    if not current:
        run_reconciliation(as_of=as_of, establishment=code, trigger=trigger, force=force)
    return as_of


def count_records(db: Session, establishment: str | None = None) -> tuple[int, int]:
    """(receipts, retorno rows) stored, for one establishment or all."""
    totals = []
    for model in (StoredReceipt, StoredStatementRow):
        query = sa.select(sa.func.count()).select_from(model)
        if establishment is not None:
            query = query.where(model.establishment_code == establishment)
        totals.append(int(db.scalar(query) or 0))
    return totals[0], totals[1]
