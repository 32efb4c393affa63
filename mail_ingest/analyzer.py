"""Where analysis (parse, classify, extract: pure CPU work) runs: inline, or in worker processes.

A large backlog is analysed by a small process pool, one batch ahead, while this process does
the database work of the batch before (parsing is most of the CPU an ingest needs, so spare
cores shorten it); a few new messages are analysed inline. Workers only see
raw bytes and return plain `Analysis` values: they never touch the database or the IMAP
connection, and they die with the poller (PR_SET_PDEATHSIG), so killing it leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Protocol

from mail_ingest.analysis import Analysis, analyze

CHUNK = 25
POOL_THRESHOLD = 200  # new messages in one pass before a pool is worth starting
_PR_SET_PDEATHSIG = 1

Pending = Callable[[], list[Analysis]]

_settings: tuple[tuple[str, ...], frozenset[str]] = ((), frozenset())


class Analyzer(Protocol):
    def submit(self, raws: Sequence[bytes]) -> Pending: ...

    def close(self) -> None: ...


class InlineAnalyzer:
    """Analyses in this process, when the results are asked for."""

    def __init__(self, integrator_domains: tuple[str, ...], own_addresses: frozenset[str]) -> None:
        self.domains = integrator_domains
        self.own = own_addresses

    def submit(self, raws: Sequence[bytes]) -> Pending:
        return lambda: [analyze(raw, self.domains, self.own) for raw in raws]

    def close(self) -> None:
        pass


class PoolAnalyzer:
    """Analyses in forked worker processes, in chunks, as soon as a batch is submitted."""

    def __init__(self, workers: int, domains: tuple[str, ...], own_addresses: frozenset[str]) -> None:
        self.executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker,
            initargs=(os.getpid(), domains, own_addresses),
        )

    def submit(self, raws: Sequence[bytes]) -> Pending:
        chunks: list[Future[list[Analysis]]] = [
            self.executor.submit(_analyze_chunk, list(raws[start : start + CHUNK]))
            for start in range(0, len(raws), CHUNK)
        ]
        return lambda: [analysis for chunk in chunks for analysis in chunk.result()]

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def make_analyzer(
    backlog: int, domains: tuple[str, ...], own_addresses: frozenset[str], workers: int | None = None
) -> Analyzer:
    """A pool for a large backlog: `workers` processes (default: one per CPU but the one this
    process needs for the database work, at least one); 0 = always inline."""
    count = max(1, (os.cpu_count() or 1) - 1) if workers is None else int(workers)
    if count >= 1 and backlog >= POOL_THRESHOLD and hasattr(os, "fork"):
        return PoolAnalyzer(count, domains, own_addresses)
    return InlineAnalyzer(domains, own_addresses)


def _init_worker(parent: int, domains: tuple[str, ...], own_addresses: frozenset[str]) -> None:
    global _settings
    _settings = (domains, own_addresses)
    with contextlib.suppress(OSError, AttributeError):
        # Linux: the kernel kills this worker when the poller dies, however it dies.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the poller died before prctl took effect
        os._exit(1)


def _analyze_chunk(raws: list[bytes]) -> list[Analysis]:
    domains, own = _settings
    return [analyze(raw, domains, own) for raw in raws]
