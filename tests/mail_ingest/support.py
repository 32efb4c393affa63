"""Helpers shared by the mail_ingest tests."""

from __future__ import annotations

from pathlib import Path

from mail_ingest.parse import ParsedMessage, parse_message

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
INTEGRATOR_DOMAINS = ("boavistatecnologia.com.br",)


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample_names() -> list[str]:
    return sorted(path.name for path in SAMPLES.glob("*.eml"))


def load_sample(name: str) -> ParsedMessage:
    return parse_message(sample_bytes(name))


def mail(headers: str, body: bytes | str = b"", *, crlf: bool = False) -> bytes:
    """Raw mail bytes from a header block (one header per line) and a body."""
    head = headers.strip("\n") + "\n\n"
    raw = head.encode("utf-8") + (body.encode("utf-8") if isinstance(body, str) else body)
    return raw.replace(b"\n", b"\r\n") if crlf else raw
