"""`mail import PATH...`: .eml files, Maildir folders and mbox files, through the IMAP pipeline.

Every path is checked before anything is ingested, so a bad path changes nothing.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mail_ingest.pipeline import Incoming

MBOX_MAGIC = b"From "


class ImportPathError(Exception):
    """A path that is not a readable .eml, Maildir or mbox."""


@dataclass(frozen=True)
class Source:
    path: Path
    kind: str  # "eml", "maildir", "mbox", "emldir"


def inspect(paths: Sequence[str | Path]) -> list[Source]:
    if not paths:
        raise ImportPathError("informe ao menos um arquivo .eml, pasta Maildir ou arquivo mbox")
    return [_inspect(Path(p)) for p in paths]


def _inspect(path: Path) -> Source:
    if not path.exists():
        raise ImportPathError(f"{path}: não existe")
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new")):
            return Source(path, "maildir")
        if any(path.rglob("*.eml")):
            return Source(path, "emldir")
        raise ImportPathError(f"{path}: pasta sem Maildir (cur/, new/) e sem arquivos .eml")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(MBOX_MAGIC))
    except OSError as error:
        raise ImportPathError(f"{path}: não foi possível ler ({error.strerror})") from error
    if not head:
        raise ImportPathError(f"{path}: arquivo vazio")
    return Source(path, "mbox" if head == MBOX_MAGIC else "eml")


def messages(sources: Sequence[Source]) -> Iterator[Incoming]:
    for source in sources:
        yield from _messages(source)


def _messages(source: Source) -> Iterator[Incoming]:
    path = source.path
    if source.kind == "eml":
        yield Incoming(raw=path.read_bytes(), source="import", source_ref=str(path.resolve()))
    elif source.kind == "emldir":
        for file in sorted(path.rglob("*.eml")):
            if file.is_file():
                yield Incoming(raw=file.read_bytes(), source="import", source_ref=str(file.resolve()))
    elif source.kind == "maildir":
        box = mailbox.Maildir(path, factory=None, create=False)
        for key in sorted(box.keys()):
            yield Incoming(raw=box.get_bytes(key), source="import", source_ref=f"{path.resolve()}#{key}")
    else:
        box_mbox = mailbox.mbox(path, factory=None, create=False)
        try:
            for index, key in enumerate(box_mbox.keys()):
                yield Incoming(
                    raw=box_mbox.get_bytes(key), source="import", source_ref=f"{path.resolve()}#{index + 1}"
                )
        finally:
            box_mbox.close()


def count(sources: Sequence[Source]) -> int:
    total = 0
    for source in sources:
        if source.kind == "eml":
            total += 1
        elif source.kind == "emldir":
            total += sum(1 for f in source.path.rglob("*.eml") if f.is_file())
        elif source.kind == "maildir":
            total += len(mailbox.Maildir(source.path, factory=None, create=False))
        else:
            box = mailbox.mbox(source.path, factory=None, create=False)
            try:
                total += len(box)
            finally:
                box.close()
    return total
