"""HTML mail bodies: sanitizing for display, text for extraction, tables as cell strings."""

from __future__ import annotations

import re

import lxml.html
import nh3
from inscriptis import Inscriptis
from inscriptis.model.config import ParserConfig
from lxml import etree

from mail_ingest.charsets import scrub_text

Row = tuple[str, ...]
Table = tuple[Row, ...]

MAX_TABLES = 200
MAX_ROWS_PER_TABLE = 5000
MAX_CELLS_PER_ROW = 200
INSCRIPTIS_MAX_ELEMENTS = 20_000

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
# Elements that start a new line inside a table cell.
_LINE_BREAKING = frozenset({"br", "p", "div", "li", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6"})
_INSCRIPTIS_CONFIG = ParserConfig(display_links=False, display_images=False)


def sanitize_html(html: str) -> str:
    """HTML safe to show inside a page: no scripts, event handlers or javascript: URLs."""
    tree = parse_html(html)
    return sanitize_tree(tree) if tree is not None else ""


def sanitize_tree(tree: lxml.html.HtmlElement) -> str:
    """:func:`sanitize_html` for an already parsed tree.

    nh3 gets lxml's re-serialization rather than the raw HTML: libxml2 caps nesting depth, and
    nh3's parser slows down quadratically on deeply nested hostile markup.
    """
    try:
        return nh3.clean(lxml.html.tostring(tree, encoding="unicode"))
    except Exception:  # nh3 refuses some inputs; an empty body is the safe answer
        return ""


def parse_html(html: str) -> lxml.html.HtmlElement | None:
    """An lxml tree for ``html``, or None when there is nothing to parse."""
    cleaned = _XML_DECLARATION.sub("", scrub_text(html), count=1)
    if not cleaned.strip():
        return None
    try:
        return lxml.html.document_fromstring(cleaned)
    except (etree.ParserError, ValueError, TypeError):
        try:
            return lxml.html.document_fromstring("<pre>" + lxml.html.escape(cleaned) + "</pre>")
        except Exception:
            return None


def html_to_text(tree: lxml.html.HtmlElement) -> str:
    """Readable plain text for an HTML tree (tables laid out, links hidden).

    Very large documents get a plain line-by-line rendering: inscriptis' table layout grows
    too slow on them.
    """
    if _element_count(tree, INSCRIPTIS_MAX_ELEMENTS + 1) > INSCRIPTIS_MAX_ELEMENTS:
        return _node_text(tree)
    try:
        text = Inscriptis(tree, _INSCRIPTIS_CONFIG).get_text()
    except Exception:  # inscriptis recursion or layout failure: keep the words
        text = _node_text(tree)
    return scrub_text(text)


def _element_count(tree: lxml.html.HtmlElement, limit: int) -> int:
    count = 0
    for _ in tree.iter():
        count += 1
        if count >= limit:
            break
    return count


def extract_tables(tree: lxml.html.HtmlElement) -> tuple[Table, ...]:
    """Every table in document order as rows of cell strings; nested tables stand alone.

    Rows without any non-empty cell are left out. A cell's line breaks (``<br>``, paragraphs)
    are kept as ``\\n``.
    """
    order: list[etree._Element] = []
    rows_by_table: dict[etree._Element, list[Row]] = {}
    for table in tree.iter("table"):
        if len(order) >= MAX_TABLES:
            break
        order.append(table)
        rows_by_table[table] = []
    for row in tree.iter("tr"):
        table = next(row.iterancestors("table"), None)
        if table is None or table not in rows_by_table:
            continue
        rows = rows_by_table[table]
        if len(rows) >= MAX_ROWS_PER_TABLE:
            continue
        cells = tuple(_node_text(cell) for cell in row.iterchildren("td", "th") if isinstance(cell.tag, str))[
            :MAX_CELLS_PER_ROW
        ]
        if any(cells):
            rows.append(cells)
    return tuple(tuple(rows_by_table[t]) for t in order if rows_by_table[t])


def _node_text(node: etree._Element) -> str:
    pieces: list[str] = []
    for event, element in etree.iterwalk(node, events=("start", "end")):
        tag = element.tag if isinstance(element.tag, str) else None
        if event == "start":
            if tag is None:
                continue
            if tag in _LINE_BREAKING:
                pieces.append("\n")
            if tag not in ("script", "style") and element.text:
                pieces.append(element.text)
        else:
            if tag in _LINE_BREAKING and tag != "br":
                pieces.append("\n")
            if element is not node and element.tail:
                pieces.append(element.tail)
    lines = (_SPACES.sub(" ", line).strip() for line in scrub_text("".join(pieces)).split("\n"))
    return "\n".join(line for line in lines if line)
