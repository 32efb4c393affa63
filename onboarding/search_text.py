"""Text as the search compares it: without accents or case, so "sao joao" finds "São João"."""

from __future__ import annotations

import unicodedata

# Between the two names, so a search never matches across them.
NAME_SEPARATOR = "\n"


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def customer_search_name(name: str | None, trade_name: str | None) -> str:
    return fold(name or "") + NAME_SEPARATOR + fold(trade_name or "")
