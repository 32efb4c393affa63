"""Lenient text decoding for mail: charsets, RFC 2047 encoded words, surrogate repair.

Brazilian mail arrives as UTF-8, ISO-8859-1 and Windows-1252, often mislabelled (us-ascii or
iso-8859-1 on UTF-8 bytes, utf-8 on Windows-1252 bytes) or labelled with names Python does not
know. Every function here returns a ``str`` and never raises on bad input.
"""

from __future__ import annotations

import binascii
import codecs
import re
import unicodedata

_FALLBACK_ERRORS = "mail_ingest_cp1252"

# Labels that say nothing useful about the bytes: decode by sniffing instead.
_MEANINGLESS_LABELS = frozenset(
    {"", "unknown", "unknown-8bit", "x-unknown", "8bit", "7bit", "binary", "default", "x-user-defined"}
)
# Codecs Python knows that are not charsets a mail part can legitimately use.
_REJECTED_CODECS = frozenset({"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined"})
# Labels commonly put on bytes that are really UTF-8 or Windows-1252: try strict UTF-8 first.
_SNIFFED_CODECS = frozenset({"ascii", "utf-8", "iso8859-1", "cp1252", "iso8859-15", "latin-1"})

_SURROGATES = re.compile("[\ud800-\udfff]")
# C0/C1 controls except tab and newline; also DEL.
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WHITESPACE_RUN = re.compile(r"\s+")
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([qQbB])\?([^?\s]*)\?=")


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Decode the offending bytes as Windows-1252, byte by byte, Latin-1 for its five holes."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    chunk = exc.object[exc.start : exc.end]
    out = []
    for byte in chunk:
        single = bytes([byte])
        try:
            out.append(single.decode("cp1252"))
        except UnicodeDecodeError:
            out.append(single.decode("latin-1"))
    return "".join(out), exc.end


codecs.register_error(_FALLBACK_ERRORS, _cp1252_fallback)


def normalize_charset(label: str | None) -> str | None:
    """Return Python's canonical codec name for a MIME charset label, or None when unusable."""
    if label is None:
        return None
    cleaned = str(label).strip().strip("\"'").strip().lower()
    if cleaned in _MEANINGLESS_LABELS or len(cleaned) > 40:
        return None
    try:
        info = codecs.lookup(cleaned)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REJECTED_CODECS:
        return None
    return info.name


def decode_bytes(data: bytes, label: str | None = None) -> str:
    """Decode ``data`` labelled ``label`` as well as possible; never raises.

    UTF-8 is tried strictly first whenever the label is missing, unknown or one of the Western
    labels that are routinely wrong; failing that, Windows-1252 (Latin-1 for its undefined bytes).
    """
    if not data:
        return ""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", _FALLBACK_ERRORS)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    codec = normalize_charset(label)
    if codec is None or codec in _SNIFFED_CODECS:
        if data.isascii():
            return data.decode("ascii")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        if codec == "utf-8":
            # Mostly UTF-8 with stray Windows-1252 bytes (a signature pasted from elsewhere).
            return data.decode("utf-8", _FALLBACK_ERRORS)
        if codec == "iso8859-15":
            return data.decode("iso8859-15", "replace")
        return data.decode("cp1252", _FALLBACK_ERRORS)
    try:
        return data.decode(codec, "replace")
    except Exception:  # a codec's own bug must not escape: fall back to the sniffing path
        return decode_bytes(data, None)


def fix_surrogates(value: str) -> str:
    """Repair a string produced with ``surrogateescape`` (raw 8-bit bytes in headers)."""
    if not _SURROGATES.search(value):
        return value
    raw = value.encode("utf-8", "surrogateescape") if _only_escape_surrogates(value) else None
    if raw is None:
        return _SURROGATES.sub("\ufffd", value)
    return decode_bytes(raw, None)


def _only_escape_surrogates(value: str) -> bool:
    return all(not ("\ud800" <= ch <= "\udfff") or "\udc80" <= ch <= "\udcff" for ch in value)


def scrub_text(value: str) -> str:
    """Text for storage and extraction: valid Unicode, LF newlines, no control characters."""
    value = fix_surrogates(value)
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _CONTROL_CHARS.sub("", value)
    return unicodedata.normalize("NFC", value)


def single_line(value: str) -> str:
    """A header-like value on one line with runs of whitespace collapsed."""
    value = _CONTROL_CHARS.sub(" ", fix_surrogates(value).replace("\t", " ").replace("\n", " "))
    return unicodedata.normalize("NFC", _WHITESPACE_RUN.sub(" ", value).strip())


_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/]*=*")


def _decode_word_payload(encoding: str, payload: str) -> bytes | None:
    try:
        if encoding in "bB":
            if not _BASE64_CHARS.fullmatch(payload):
                return None
            compact = payload.encode("ascii", "ignore")
            compact += b"=" * (-len(compact) % 4)
            return binascii.a2b_base64(compact)
        return binascii.a2b_qp(payload.replace("_", " ").encode("ascii", "ignore"), header=True)
    except (binascii.Error, ValueError):
        return None


def decode_rfc2047(value: str) -> str:
    """Decode RFC 2047 encoded words, joining adjacent ones of one charset before decoding.

    Whitespace between adjacent encoded words is dropped (RFC 2047 section 6.2). Text outside
    encoded words that carries raw 8-bit bytes is repaired with :func:`fix_surrogates`.
    """
    if "=?" not in value:
        return fix_surrogates(value)
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None
    last_was_encoded = False
    pos = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending:
            out.append(decode_bytes(bytes(pending), pending_charset))
        pending = bytearray()
        pending_charset = None

    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        pos = match.end()
        charset = match.group(1).split("*", 1)[0]  # drop an RFC 2231 language suffix
        decoded = _decode_word_payload(match.group(2), match.group(3))
        if decoded is None:
            flush()
            out.append(fix_surrogates(between + match.group(0)))
            last_was_encoded = False
            continue
        if between and not (last_was_encoded and between.isspace()):
            flush()
            out.append(fix_surrogates(between))
        if pending and pending_charset != charset:
            flush()
        pending_charset = charset
        pending += decoded
        last_was_encoded = True
    flush()
    out.append(fix_surrogates(value[pos:]))
    return "".join(out)
