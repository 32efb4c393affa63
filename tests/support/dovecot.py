"""A private Dovecot IMAP server for tests, listening on loopback only.

It runs `/usr/sbin/dovecot -F -c <private conf>` in its own temp dir (config, certificate,
passwd-file, Maildirs, base_dir, state_dir and log), with one port for plain IMAP (STARTTLS
offered) and one for implicit TLS (imaps). The helper methods talk to it over real IMAP with
imapclient, so what they do is exactly what the application will see.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from imapclient import IMAPClient

from tests.support.services import free_port, port_open, wait_for_port, wait_until
from tests.support.tls import CertPair, make_self_signed

DOVECOT_BIN = Path("/usr/sbin/dovecot")
DH_PARAMS = Path("/usr/share/dovecot/dh.pem")

MAIL_OWNER = "mail"  # system user owning the Maildirs

DEFAULT_USER = "atendimento@vetorsolucoes.com.br"
DEFAULT_PASSWORD = "secret"

Security = Literal["none", "starttls", "ssl"]

_APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")


class DovecotError(RuntimeError):
    pass


@dataclass(frozen=True)
class StoredMessage:
    uid: int
    flags: tuple[bytes, ...]
    raw: bytes


def dovecot_available() -> str | None:
    """None when a private Dovecot can be started here, else the reason it cannot."""
    if not DOVECOT_BIN.exists():
        return f"{DOVECOT_BIN} is not installed (apt-get install dovecot-imapd)"
    if os.geteuid() != 0:
        return "the private Dovecot needs root (it switches to the dovecot/dovenull users)"
    for user in ("dovecot", "dovenull", MAIL_OWNER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"system user {user!r} is missing (reinstall dovecot-core)"
    return None


class DovecotServer:
    """A private Dovecot. `start()` it, talk to `host`/`port`/`ssl_port`, `stop()` it.

    `users` maps login -> password; the first one is the default for the helper methods.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        host: str = "127.0.0.1",
        separator: str = "/",
    ) -> None:
        self.host = host
        self.separator = separator
        self.users: dict[str, str] = dict(users or {DEFAULT_USER: DEFAULT_PASSWORD})
        if not self.users:
            raise ValueError("DovecotServer needs at least one user")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dovecot-test-"))
        # The auth process runs as the unprivileged dovecot user and must read the passwd-file.
        self.workdir.chmod(0o755)
        self.port = free_port(host)
        self.ssl_port = free_port(host)
        self.instance_name = f"test-{uuid.uuid4().hex[:10]}"
        self.config_path = self.workdir / "dovecot.conf"
        self.passwd_path = self.workdir / "users"
        self.mail_root = self.workdir / "mail"
        self.log_path = self.workdir / "dovecot.log"
        self.stdout_path = self.workdir / "dovecot.stdout"
        self.cert: CertPair = make_self_signed(self.workdir / "tls", "imap")
        self._process: subprocess.Popen[bytes] | None = None
        self._started_once = False
        self._write_passwd()
        self._write_config()

    # -- identity ---------------------------------------------------------------------------

    @property
    def user(self) -> str:
        return next(iter(self.users))

    @property
    def password(self) -> str:
        return self.users[self.user]

    @property
    def cert_path(self) -> Path:
        return self.cert.cert_path

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server against the generated certificate."""
        return self.cert.client_context()

    def env(self, security: Security = "ssl") -> dict[str, str]:
        """The application's IMAP_* settings (SPEC section 2) pointing at this server."""
        return {
            "IMAP_HOST": self.host,
            "IMAP_PORT": str(self.ssl_port if security == "ssl" else self.port),
            "IMAP_USER": self.user,
            "IMAP_PASSWORD": self.password,
            "IMAP_SECURITY": security,
        }

    def add_user(self, address: str, password: str) -> None:
        """Add (or change) a login; Dovecot rereads the passwd-file when it changes."""
        self.users[address] = password
        self._write_passwd()

    # -- configuration ----------------------------------------------------------------------

    def _write_passwd(self) -> None:
        # passwd-file refuses UID 0, so mail is stored as Debian's `mail` system user.
        account = pwd.getpwnam(MAIL_OWNER)
        uid, gid = account.pw_uid, account.pw_gid
        lines = []
        for address, password in self.users.items():
            if ":" in address or ":" in password or "\n" in address + password:
                raise ValueError("user names and passwords may not contain ':' or newlines")
            home = self.maildir(address).parent
            lines.append(f"{address}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n")
        tmp = self.passwd_path.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        tmp.chmod(0o644)
        tmp.replace(self.passwd_path)

    def _write_config(self) -> None:
        d = self.workdir
        (d / "state").mkdir(exist_ok=True)
        self.mail_root.mkdir(exist_ok=True)
        account = pwd.getpwnam(MAIL_OWNER)
        os.chown(self.mail_root, account.pw_uid, account.pw_gid)
        dh = f"ssl_dh = <{DH_PARAMS}\n" if DH_PARAMS.exists() else ""
        config = f"""# Private test instance; generated by tests/support/dovecot.py
instance_name = {self.instance_name}
base_dir = {d}/run
state_dir = {d}/state
listen = {self.host}
protocols = imap
log_path = {self.log_path}
info_log_path = {self.log_path}
auth_verbose = yes
auth_mechanisms = plain login
disable_plaintext_auth = no
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
mail_privileged_group =
ssl = yes
ssl_cert = <{self.cert.cert_path}
ssl_key = <{self.cert.key_path}
ssl_min_protocol = TLSv1.2
{dh}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_path}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd_path}
}}
namespace inbox {{
  inbox = yes
  separator = {self.separator}
  prefix =
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.ssl_port}
    ssl = yes
  }}
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
"""
        self.config_path.write_text(config)

    # -- life cycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start the server. Until it has run once, a failed start is retried on new ports, in
        case another test run took a port between free_port() and the bind."""
        if self.running:
            return
        attempts = 1 if self._started_once else 3
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
            except DovecotError:
                if attempt == attempts:
                    raise
                self.port = free_port(self.host)
                self.ssl_port = free_port(self.host)
                self._write_config()
            else:
                self._started_once = True
                return

    def _start_once(self, timeout: float) -> None:
        for port in (self.port, self.ssl_port):
            if port_open(self.host, port):
                raise DovecotError(f"port {self.host}:{port} is already taken by someone else")
        with self.stdout_path.open("ab") as out:
            self._process = subprocess.Popen(
                [str(DOVECOT_BIN), "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(
                lambda: (
                    not self.running
                    or (port_open(self.host, self.port) and port_open(self.host, self.ssl_port))
                ),
                timeout,
                "dovecot to listen",
            )
        except TimeoutError as exc:
            self.kill()
            raise DovecotError(f"dovecot did not start: {exc}\n{self.log_tail()}") from exc
        if not self.running:
            raise DovecotError(f"dovecot exited at start\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful shutdown (SIGTERM to the master, which ends its children)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._reap_group(process.pid)
        self._process = None
        self._wait_ports_closed()

    def kill(self) -> None:
        """Abrupt death of the master and every process it started (a crashed server)."""
        process = self._process
        if process is None:
            return
        self._reap_group(process.pid, sig=signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        self._process = None
        self._wait_ports_closed()

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    @staticmethod
    def _reap_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> None:
        # The master runs in its own session (start_new_session), so its process group holds
        # only the processes this server started; leftovers after the master exits are ours.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def _wait_ports_closed(self) -> None:
        wait_until(
            lambda: not port_open(self.host, self.port) and not port_open(self.host, self.ssl_port),
            10,
            "dovecot's ports to close",
        )

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.stdout_path, self.log_path):
            if path.exists():
                text += "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
        return text

    # -- IMAP access ------------------------------------------------------------------------

    def connect(
        self,
        security: Security = "none",
        user: str | None = None,
        password: str | None = None,
        login: bool = True,
        timeout: float = 10.0,
    ) -> IMAPClient:
        """An imapclient connection, logged in unless `login=False`. Caller logs out."""
        if security == "ssl":
            client = IMAPClient(
                self.host, port=self.ssl_port, ssl=True, ssl_context=self.ssl_context(), timeout=timeout
            )
        else:
            client = IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout)
            if security == "starttls":
                client.starttls(self.ssl_context())
        if login:
            name = user or self.user
            client.login(name, password if password is not None else self.users[name])
        return client

    @contextlib.contextmanager
    def session(self, user: str | None = None) -> Iterator[IMAPClient]:
        wait_for_port(self.host, self.port, timeout=10)
        client = self.connect(user=user)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(
        self,
        raw: bytes,
        folder: str = "INBOX",
        flags: Sequence[str | bytes] = (),
        user: str | None = None,
    ) -> int:
        """APPEND a raw RFC 822 message; returns its UID (from APPENDUID)."""
        with self.session(user) as client:
            response = client.append(folder, raw, flags=tuple(flags))
        match = _APPENDUID.search(response if isinstance(response, bytes) else str(response).encode())
        if match is None:
            raise DovecotError(f"APPEND gave no APPENDUID: {response!r}")
        return int(match.group(2))

    def create_folder(self, name: str, user: str | None = None) -> None:
        """Create `name` unless it already exists as a selectable mailbox."""
        with self.session(user) as client:
            if not _selectable(client, name):
                client.create_folder(name)

    def delete_folder(self, name: str, user: str | None = None) -> None:
        """Delete `name` (its subfolders stay, as IMAP DELETE does)."""
        with self.session(user) as client:
            if _selectable(client, name):
                client.delete_folder(name)

    def folders(self, user: str | None = None) -> list[str]:
        with self.session(user) as client:
            return sorted(name for _flags, _sep, name in client.list_folders())

    def uidvalidity(self, folder: str = "INBOX", user: str | None = None) -> int:
        with self.session(user) as client:
            status = client.folder_status(folder, [b"UIDVALIDITY"])
        return int(status[b"UIDVALIDITY"])

    def recreate_folder(self, name: str, user: str | None = None) -> int:
        """Delete and create `name` again; returns its new UIDVALIDITY (checked to differ).

        Its UIDs restart at 1, as when a server's mailbox is rebuilt. INBOX cannot be deleted
        over IMAP, so for it every message is expunged and Dovecot's UID list and indexes are
        removed from disk; Dovecot then gives INBOX a fresh UIDVALIDITY on the next access.
        Sessions open on that INBOX meanwhile are not supported.
        """
        before = self.uidvalidity(name, user) if self._exists(name, user) else None
        if name.upper() == "INBOX":
            self._rebuild_inbox(user)
        else:
            with self.session(user) as client:
                if _selectable(client, name):
                    client.delete_folder(name)
                client.create_folder(name)
        after = self.uidvalidity(name, user)
        if before is not None and after == before:
            raise DovecotError(f"UIDVALIDITY of {name!r} did not change ({after})")
        return after

    def maildir(self, user: str | None = None) -> Path:
        """The user's Maildir root on disk (INBOX lives directly in it)."""
        local, _, domain = (user or self.user).partition("@")
        return self.mail_root / (domain or "local") / local / "Maildir"

    def _exists(self, name: str, user: str | None) -> bool:
        with self.session(user) as client:
            return _selectable(client, name)

    def uids(self, folder: str = "INBOX", user: str | None = None) -> list[int]:
        with self.session(user) as client:
            client.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in client.search("ALL"))

    def flags(self, uid: int, folder: str = "INBOX", user: str | None = None) -> tuple[bytes, ...]:
        with self.session(user) as client:
            client.select_folder(folder, readonly=True)
            data = client.get_flags([uid])
        if uid not in data:
            raise KeyError(f"no message with UID {uid} in {folder!r}")
        return tuple(data[uid])

    def fetch_all(self, folder: str = "INBOX", user: str | None = None) -> list[StoredMessage]:
        """Every message in `folder` (read with BODY.PEEK[], so \\Seen is not set)."""
        with self.session(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return []
            data = client.fetch(uids, [b"FLAGS", b"BODY.PEEK[]"])
        return [
            StoredMessage(uid=int(uid), flags=tuple(item[b"FLAGS"]), raw=bytes(item[b"BODY[]"]))
            for uid, item in sorted(data.items())
        ]

    def empty_folder(self, folder: str = "INBOX", user: str | None = None) -> None:
        with self.session(user) as client:
            client.select_folder(folder)
            uids = client.search("ALL")
            if uids:
                client.delete_messages(uids)
                client.expunge()

    def reset(self, users: Iterable[str] | None = None) -> None:
        """Fresh state for a test: every folder but INBOX deleted, INBOX emptied and rebuilt
        (new UIDVALIDITY, UIDs from 1 again)."""
        for user in users or list(self.users):
            with self.session(user) as client:
                names = [name for _flags, _sep, name in client.list_folders()]
                # Deepest first so children go before their parents.
                for name in sorted(names, key=lambda n: n.count(self.separator), reverse=True):
                    if name.upper() != "INBOX" and _selectable(client, name):
                        client.delete_folder(name)
            self._rebuild_inbox(user)

    def _rebuild_inbox(self, user: str | None) -> None:
        self.empty_folder("INBOX", user)
        maildir = self.maildir(user)
        for pattern in ("dovecot-uidlist", "dovecot.index*", "dovecot.list.index*"):
            for path in maildir.glob(pattern):
                path.unlink()


def _selectable(client: IMAPClient, name: str) -> bool:
    """True when `name` exists as a real mailbox.

    LIST is no help here: with Maildir++ a deleted parent is still listed while a child exists.
    """
    try:
        client.folder_status(name, [b"MESSAGES"])
    except IMAPClient.Error:
        return False
    return True
