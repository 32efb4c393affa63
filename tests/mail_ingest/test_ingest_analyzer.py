"""Analysis in worker processes gives exactly what inline analysis gives."""

from __future__ import annotations

from mail_ingest.analyzer import InlineAnalyzer, PoolAnalyzer, make_analyzer
from tests.mail_ingest.ingest_helpers import SAMPLES, SUPPORT

DOMAINS = ("boavistatecnologia.com.br",)
OWN = frozenset({SUPPORT})


def test_pool_and_inline_analysis_agree_on_every_sample() -> None:
    raws = [p.read_bytes() for p in sorted(SAMPLES.glob("*.eml"))] + [b"\x00 not mail"]
    pool = PoolAnalyzer(1, DOMAINS, OWN)
    try:
        pooled = pool.submit(raws)()
    finally:
        pool.close()

    inline = InlineAnalyzer(DOMAINS, OWN).submit(raws)()

    assert pooled == inline
    assert sum(1 for a in inline if a.customer is not None) >= 10
    assert inline[-1].malformed


def test_a_pool_only_for_a_large_backlog_and_never_when_disabled() -> None:
    assert isinstance(make_analyzer(5, DOMAINS, OWN), InlineAnalyzer)
    assert isinstance(make_analyzer(10_000, DOMAINS, OWN, workers=0), InlineAnalyzer)
    big = make_analyzer(10_000, DOMAINS, OWN, workers=1)
    try:
        assert isinstance(big, PoolAnalyzer)
    finally:
        big.close()
