"""Attachment file names that are safe to store and to offer for download."""

from __future__ import annotations

import mimetypes
import re
import unicodedata

from mail_ingest.charsets import decode_rfc2047, fix_surrogates

MAX_FILENAME_LENGTH = 120
_MAX_EXTENSION_LENGTH = 16
_UNSAFE_CHARS = re.compile(r'[<>:"|?*\\/]')
_SPACES = re.compile(r"\s+")
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)
_EXTRA_EXTENSIONS = {"message/rfc822": ".eml", "text/csv": ".csv", "text/plain": ".txt"}


def safe_filename(raw: str | None, content_type: str = "application/octet-stream") -> str:
    """A file name without path parts, control or reserved characters, of bounded length.

    ``raw`` may still carry RFC 2047 encoded words or surrogate-escaped bytes; both are decoded.
    When nothing usable is left, the name is ``anexo`` plus an extension guessed from
    ``content_type``.
    """
    name = decode_rfc2047(fix_surrogates(raw or ""))
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[\\/]", name)[-1]  # the last path component only
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # controls, format chars
    name = _UNSAFE_CHARS.sub("_", name)
    name = _SPACES.sub(" ", name).strip(" .")
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > _MAX_EXTENSION_LENGTH or " " in extension:
        stem, extension = name, ""
    if stem.lower() in _WINDOWS_RESERVED:
        stem = "_" + stem
    if not stem:
        stem = "anexo"
        extension = extension or _guess_extension(content_type)
    suffix = f".{extension}" if extension else ""
    return stem[: MAX_FILENAME_LENGTH - len(suffix)].rstrip(" .") + suffix


def _guess_extension(content_type: str) -> str:
    guessed = _EXTRA_EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ".bin"
    return guessed.lstrip(".")
