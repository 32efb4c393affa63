"""The IMAP poller: a UIDVALIDITY + last-UID cursor per folder, BODY.PEEK[] in batches.

One pass: finish the server actions a crash left pending, read the folder's UIDVALIDITY (a new
one resets the cursor; Message-ID and raw hash keep the re-read from duplicating anything),
`UID SEARCH` past the cursor, check RFC822.SIZE (oversize mail is quarantined from its headers,
never downloaded), fetch the rest in batches and ingest each message in its own transaction.
The cursor advances once a batch's messages are committed; only then is the server told
(\\Seen, or a move to IMAP_PROCESSED_FOLDER). Nothing is ever deleted on the server.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from imapclient import IMAPClient, SocketTimeout
from imapclient.imapclient import SEEN
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mail_ingest.analyzer import Pending, make_analyzer
from mail_ingest.inbound_models import ImapCursor, ImapPendingAction
from mail_ingest.pipeline import Incoming, ServerRef, Tally, ingest_batch, reprocess_pending
from mail_ingest.process import IngestSettings

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}
SECURITY_CHOICES = tuple(DEFAULT_PORTS)
SIZE_CHUNK = 1000
ACTION_CHUNK = 500


class MailboxUnavailable(Exception):
    """The mail server could not be reached or dropped the connection; nothing was lost.

    `tally` holds what the pass did before the failure (all of it committed).
    """

    def __init__(self, message: str, tally: Tally | None = None) -> None:
        super().__init__(message)
        self.tally = tally if tally is not None else Tally()


class MailboxMisconfigured(Exception):
    """The IMAP settings are missing or invalid."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: str
    security: str = "ssl"
    folder: str = "INBOX"
    processed_folder: str = ""
    max_bytes: int = 26214400
    connect_timeout: float = 15.0
    read_timeout: float = 120.0
    batch_size: int = 100
    batch_bytes: int = 16 * 1024 * 1024
    ssl_context: ssl.SSLContext | None = None
    analysis_workers: int | None = None  # worker processes for a large backlog (see analyzer)

    @property
    def account(self) -> str:
        """The cursor's key: the login at the host (a port or security change keeps the cursor)."""
        return f"{self.user.lower()}@{self.host.lower()}"

    @classmethod
    def from_config(cls, config: Any) -> ImapSettings:
        host = (config.get("IMAP_HOST") or "").strip()
        if not host:
            raise MailboxMisconfigured("IMAP_HOST não está configurado: não há caixa postal para ler.")
        security = (config.get("IMAP_SECURITY") or "ssl").strip().lower()
        if security not in SECURITY_CHOICES:
            raise MailboxMisconfigured(f"IMAP_SECURITY inválido: {security!r} (use ssl, starttls ou none).")
        user = config.get("IMAP_USER") or ""
        if not user:
            raise MailboxMisconfigured("IMAP_USER não está configurado.")
        port = config.get("IMAP_PORT") or DEFAULT_PORTS[security]
        return cls(
            host=host,
            port=int(port),
            user=user,
            password=config.get("IMAP_PASSWORD") or "",
            security=security,
            folder=config.get("IMAP_FOLDER") or "INBOX",
            processed_folder=(config.get("IMAP_PROCESSED_FOLDER") or "").strip(),
            max_bytes=int(config.get("MAIL_MAX_BYTES") or 26214400),
            connect_timeout=float(config.get("IMAP_CONNECT_TIMEOUT", 15)),
            read_timeout=float(config.get("IMAP_READ_TIMEOUT", 120)),
            batch_size=int(config.get("IMAP_BATCH_SIZE", 100)),
            ssl_context=config.get("IMAP_SSL_CONTEXT"),
            analysis_workers=config.get("MAIL_ANALYSIS_WORKERS"),
        )


def connect(settings: ImapSettings) -> IMAPClient:
    """Connected and logged in; TLS verified with the system trust store (or the given context)."""
    timeout = SocketTimeout(connect=settings.connect_timeout, read=settings.read_timeout)
    context = settings.ssl_context or ssl.create_default_context()
    if settings.security == "ssl":
        client = IMAPClient(settings.host, port=settings.port, ssl=True, ssl_context=context, timeout=timeout)
    else:
        client = IMAPClient(settings.host, port=settings.port, ssl=False, timeout=timeout)
        if settings.security == "starttls":
            client.starttls(context)
    try:
        client.login(settings.user, settings.password)
    except Exception:
        client.shutdown()
        raise
    client.normalise_times = False  # INTERNALDATE with its time zone
    return client


class Poller:
    """One pass over one folder. `heartbeat` is called between batches (to extend a lock)."""

    def __init__(
        self,
        db: Session,
        imap: ImapSettings,
        ingest_settings: IngestSettings,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.imap = imap
        self.settings = ingest_settings
        self.heartbeat = heartbeat or (lambda: None)
        self.tally = Tally()
        self.client: IMAPClient | None = None

    def run(self) -> Tally:
        self.tally["fetched"] += 0
        reprocess_pending(self.db, self.settings, self.tally)
        try:
            self.client = connect(self.imap)
            try:
                self._pass(self.client)
            finally:
                client, self.client = self.client, None
                try:
                    client.logout()
                except Exception:
                    client.shutdown()
        except (IMAPClient.Error, OSError) as error:
            self.db.rollback()
            raise MailboxUnavailable(
                f"servidor IMAP {self.imap.host}:{self.imap.port} indisponível: "
                f"{error or type(error).__name__}",
                self.tally,
            ) from error
        return self.tally

    # -- one pass --------------------------------------------------------------------------

    def _pass(self, client: IMAPClient) -> None:
        folder = self.imap.folder
        info = client.select_folder(folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        cursor = self._cursor(folder, uidvalidity)
        self._apply_pending(client, folder, uidvalidity)

        last_uid = cursor.last_uid
        uids = sorted(int(u) for u in client.search(["UID", f"{last_uid + 1}:*"]) if int(u) > last_uid)
        if not uids:
            return
        sizes = self._sizes(client, uids)
        analyzer = make_analyzer(
            len(uids),
            self.settings.integrator_domains,
            self.settings.own_addresses,
            self.imap.analysis_workers,
        )
        try:
            # One batch ahead: the next batch is fetched and being analysed (in worker processes
            # for a large backlog) while this one is stored and committed.
            previous: tuple[list[int], list[Incoming], Pending] | None = None
            for batch in self._batches(uids, sizes):
                items = self._fetch(client, folder, uidvalidity, batch, sizes)
                current = (batch, items, analyzer.submit([item.raw for item in items]))
                if previous is not None:
                    self._commit(client, folder, uidvalidity, *previous)
                previous = current
            if previous is not None:
                self._commit(client, folder, uidvalidity, *previous)
        finally:
            analyzer.close()

    def _commit(
        self,
        client: IMAPClient,
        folder: str,
        uidvalidity: int,
        batch: list[int],
        items: list[Incoming],
        analyses: Pending,
    ) -> None:
        ingest_batch(self.db, items, self.settings, self.tally, analyses)
        self._advance(folder, batch[-1])
        self._apply_pending(client, folder, uidvalidity)
        self.heartbeat()

    def _cursor(self, folder: str, uidvalidity: int) -> ImapCursor:
        db = self.db
        cursor = db.scalars(
            select(ImapCursor).where(ImapCursor.account == self.imap.account, ImapCursor.folder == folder)
        ).first()
        if cursor is None:
            cursor = ImapCursor(account=self.imap.account, folder=folder, uidvalidity=uidvalidity, last_uid=0)
            db.add(cursor)
        elif cursor.uidvalidity != uidvalidity:
            log.warning(
                "UIDVALIDITY of %s changed (%s -> %s): re-reading the folder",
                folder,
                cursor.uidvalidity,
                uidvalidity,
            )
            self.tally["resynced"] += 1
            cursor.uidvalidity = uidvalidity
            cursor.last_uid = 0
        # UIDs of another UIDVALIDITY name other messages now: their pending actions are void.
        db.execute(
            delete(ImapPendingAction).where(
                ImapPendingAction.account == self.imap.account,
                ImapPendingAction.folder == folder,
                ImapPendingAction.uidvalidity != uidvalidity,
            )
        )
        db.commit()
        return cursor

    def _advance(self, folder: str, uid: int) -> None:
        cursor = self.db.scalars(
            select(ImapCursor).where(ImapCursor.account == self.imap.account, ImapCursor.folder == folder)
        ).one()
        if uid > cursor.last_uid:
            cursor.last_uid = uid
        self.db.commit()

    def _sizes(self, client: IMAPClient, uids: Sequence[int]) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), SIZE_CHUNK):
            chunk = uids[start : start + SIZE_CHUNK]
            for uid, data in client.fetch(chunk, ["RFC822.SIZE"]).items():
                sizes[int(uid)] = int(data.get(b"RFC822.SIZE", 0))
        return sizes

    def _batches(self, uids: Sequence[int], sizes: dict[int, int]) -> Iterator[list[int]]:
        batch: list[int] = []
        total = 0
        for uid in uids:
            size = min(sizes.get(uid, 0), self.imap.max_bytes)
            if batch and (len(batch) >= self.imap.batch_size or total + size > self.imap.batch_bytes):
                yield batch
                batch, total = [], 0
            batch.append(uid)
            total += size
        if batch:
            yield batch

    def _fetch(
        self, client: IMAPClient, folder: str, uidvalidity: int, batch: list[int], sizes: dict[int, int]
    ) -> list[Incoming]:
        oversize = [uid for uid in batch if sizes.get(uid, 0) > self.imap.max_bytes]
        wanted = [uid for uid in batch if uid not in set(oversize)]
        fetched: dict[int, Any] = {}
        if wanted:
            fetched.update(client.fetch(wanted, ["BODY.PEEK[]", "INTERNALDATE"]))
        headers: dict[int, Any] = {}
        if oversize:
            headers.update(client.fetch(oversize, ["BODY.PEEK[HEADER]", "INTERNALDATE"]))
        items: list[Incoming] = []
        for uid in batch:
            ref = f"imap:{self.imap.account}/{folder};UIDVALIDITY={uidvalidity}/;UID={uid}"
            if uid in fetched and b"BODY[]" in fetched[uid]:
                data = fetched[uid]
                self.tally["fetched"] += 1
                items.append(
                    Incoming(
                        raw=bytes(data[b"BODY[]"]),
                        source="imap",
                        source_ref=ref,
                        received_at=_aware(data.get(b"INTERNALDATE")),
                        server=ServerRef(self.imap.account, folder, uidvalidity, uid),
                    )
                )
            elif uid in headers and b"BODY[HEADER]" in headers[uid]:
                data = headers[uid]
                self.tally["oversize"] += 1
                # Left untouched on the server (unread, in place) for a person to look at.
                items.append(
                    Incoming(
                        raw=bytes(data[b"BODY[HEADER]"]),
                        source="imap",
                        source_ref=ref,
                        received_at=_aware(data.get(b"INTERNALDATE")),
                        headers_only=True,
                        size=sizes[uid],
                    )
                )
            else:
                log.info("UID %s of %s vanished before it was read", uid, folder)
                self.tally["vanished"] += 1
        return items

    # -- server side, after the commit -------------------------------------------------------

    def _apply_pending(self, client: IMAPClient, folder: str, uidvalidity: int) -> None:
        db = self.db
        uids = db.scalars(
            select(ImapPendingAction.uid)
            .where(
                ImapPendingAction.account == self.imap.account,
                ImapPendingAction.folder == folder,
                ImapPendingAction.uidvalidity == uidvalidity,
            )
            .order_by(ImapPendingAction.uid)
        ).all()
        db.rollback()
        if not uids:
            return
        target = self.imap.processed_folder
        if target and target != folder and not client.folder_exists(target):
            client.create_folder(target)
        for start in range(0, len(uids), ACTION_CHUNK):
            chunk = list(uids[start : start + ACTION_CHUNK])
            if target and target != folder:
                if client.has_capability("MOVE"):
                    client.move(chunk, target)
                else:
                    # Without MOVE a move would need \Deleted and EXPUNGE: copy, mark read, keep.
                    client.copy(chunk, target)
                    client.add_flags(chunk, [SEEN], silent=True)
                self.tally["moved"] += len(chunk)
            else:
                client.add_flags(chunk, [SEEN], silent=True)
                self.tally["flagged"] += len(chunk)
            db.execute(
                delete(ImapPendingAction).where(
                    ImapPendingAction.account == self.imap.account,
                    ImapPendingAction.folder == folder,
                    ImapPendingAction.uidvalidity == uidvalidity,
                    ImapPendingAction.uid.in_(chunk),
                )
            )
            db.commit()


def _aware(value: Any) -> datetime | None:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return None
