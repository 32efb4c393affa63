"""The integrator adapter: send a remessa, fetch the retornos; the file layout and the transport behind it.

The engine only talks to `IntegratorAdapter`. Two things plug into it:

- a `Layout`: how a remessa is written and how a retorno file becomes the retorno CSV of SPEC
  section 7. `BoavistaProvisional` is the provisional layout of SPEC section 7 (the remessa has the
  ERP receipts columns of section 6); the integrator's real layout replaces it here, the engine
  does not change.
- a `Transport`: where the files go. `FolderTransport` uses `RECON_EXCHANGE_DIR/outbox` and
  `/inbox`; `SftpTransport` (paramiko) a remote server whose host key must be known.

Files are written atomically on both transports (a hidden temporary name, then a rename), so the
other side never reads half a file; names starting with "." or ending in ".part"/".tmp" are never
read. A retorno file, once handled, is moved to `inbox/archive/` (or `inbox/rejected/` when it
could not be read at all), so it is listed only once.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import posixpath
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any, Protocol
from zoneinfo import ZoneInfo

from reconciliation import csvformat, records

OUTBOX = "outbox"
INBOX = "inbox"
ARCHIVE = "archive"
REJECTED = "rejected"
MAX_RETORNO_BYTES = 512 * 1024 * 1024
SFTP_TIMEOUT_SECONDS = 20.0


class ExchangeError(Exception):
    """The exchange with the integrator failed; `str()` is a pt-BR reason fit for the screens."""


class FileTooLarge(ExchangeError):
    """A retorno file over MAX_RETORNO_BYTES: set aside, never read into memory."""


class HostKeyError(ExchangeError):
    """The SFTP server did not present the host key configured for it."""


# --- layouts --------------------------------------------------------------------------------


class Layout(Protocol):
    name: str

    def remessa_name(self, establishment: str, as_of: date) -> str: ...

    def write_remessa(self, receipts: Iterable[records.Receipt], stream: IO[str], tz: ZoneInfo) -> int: ...

    def is_retorno(self, name: str) -> bool: ...

    def retorno_csv(self, name: str, raw: bytes) -> bytes:
        """The file as the retorno CSV of SPEC section 7 (what the importer reads)."""
        ...


_SAFE_CODE = re.compile(r"[^A-Za-z0-9_-]+")


class BoavistaProvisional:
    """SPEC section 7's provisional layout: remessa = receipts CSV, retorno = section 7 CSV."""

    name = "boavista-provisional"

    def remessa_name(self, establishment: str, as_of: date) -> str:
        return f"REMESSA_{_SAFE_CODE.sub('_', establishment)}_{as_of:%Y%m%d}.csv"

    def write_remessa(self, receipts: Iterable[records.Receipt], stream: IO[str], tz: ZoneInfo) -> int:
        return csvformat.write_remessa(receipts, stream, tz=tz)

    def is_retorno(self, name: str) -> bool:
        return name.lower().endswith(".csv")

    def retorno_csv(self, name: str, raw: bytes) -> bytes:
        return raw


BOAVISTA_PROVISIONAL = BoavistaProvisional()


# --- transports -----------------------------------------------------------------------------


def visible(name: str) -> bool:
    """Not a temporary or hidden file of a writer still at work."""
    return not (name.startswith(".") or name.endswith((".part", ".tmp")))


class Transport(Protocol):
    endpoint: str  # identifies the exchange in the bookkeeping of files already handled

    def put(self, name: str, data: bytes) -> None:
        """Write `outbox/name` atomically (replacing a previous file of that name)."""
        ...

    def incoming(self) -> list[str]:
        """The names of the files waiting in the inbox, oldest name first."""
        ...

    def read(self, name: str) -> bytes: ...

    def archive(self, name: str, *, rejected: bool = False) -> str:
        """Move `inbox/name` out of the way; returns where it went."""
        ...

    def close(self) -> None: ...


def _safe_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise ExchangeError(f"nome de arquivo inválido: {name!r}")
    return name


class FolderTransport:
    """`base/outbox`, `base/inbox`, `base/inbox/archive`, `base/inbox/rejected` on a local disk."""

    def __init__(self, base: Path | str) -> None:
        self.base = Path(base).resolve()
        self.outbox = self.base / OUTBOX
        self.inbox = self.base / INBOX
        self.endpoint = f"folder:{self.base}"
        try:
            for folder in (self.outbox, self.inbox, self.inbox / ARCHIVE, self.inbox / REJECTED):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ExchangeError(
                f"pasta de troca inacessível ({self.base}): {error.strerror or error}"
            ) from None

    def put(self, name: str, data: bytes) -> None:
        write_atomically(self.outbox / _safe_name(name), data)

    def incoming(self) -> list[str]:
        try:
            entries = list(os.scandir(self.inbox))
        except OSError as error:
            raise ExchangeError(f"não foi possível ler {self.inbox}: {error.strerror or error}") from None
        return sorted(e.name for e in entries if e.is_file(follow_symlinks=False) and visible(e.name))

    def read(self, name: str) -> bytes:
        path = self.inbox / _safe_name(name)
        try:
            if path.stat().st_size > MAX_RETORNO_BYTES:
                raise FileTooLarge(f"{name}: arquivo maior que {MAX_RETORNO_BYTES // (1024 * 1024)} MB")
            return path.read_bytes()
        except OSError as error:
            raise ExchangeError(f"não foi possível ler {path}: {error.strerror or error}") from None

    def archive(self, name: str, *, rejected: bool = False) -> str:
        source = self.inbox / _safe_name(name)
        folder = self.inbox / (REJECTED if rejected else ARCHIVE)
        target = _free_path(folder, name)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            return ""  # another pass archived it meanwhile
        except OSError as error:
            raise ExchangeError(f"não foi possível arquivar {source}: {error.strerror or error}") from None
        return str(target.relative_to(self.base))

    def close(self) -> None:
        return None


def write_atomically(path: Path, data: bytes) -> None:
    """`data` appears at `path` whole or not at all (a hidden temporary file, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _free_path(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/name.1`, `.2`, ... when a file of that name was archived before."""
    target = folder / name
    n = 0
    while target.exists():
        n += 1
        target = folder / f"{name}.{n}"
    return target


@dataclass(frozen=True)
class SftpSettings:
    """Where and how to log in. Secrets are never stored here: `password_env` names the environment
    variable holding the password (or the private key's passphrase)."""

    host: str
    username: str
    port: int = 22
    outbox_dir: str = OUTBOX
    inbox_dir: str = INBOX
    host_key: str = ""  # "ssh-ed25519 AAAA..." (a public key: not a secret)
    known_hosts_file: str = ""
    key_file: str = ""  # path of the private key on this machine
    password_env: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SftpSettings:
        try:
            port = int(data.get("port") or 22)
        except (TypeError, ValueError):
            raise ExchangeError(f"porta SFTP inválida: {data.get('port')!r}") from None
        settings = cls(
            host=str(data.get("host") or "").strip(),
            username=str(data.get("username") or "").strip(),
            port=port,
            outbox_dir=str(data.get("outbox_dir") or OUTBOX).strip(),
            inbox_dir=str(data.get("inbox_dir") or INBOX).strip(),
            host_key=_public_key_line(str(data.get("host_key") or "")),
            known_hosts_file=str(data.get("known_hosts_file") or "").strip(),
            key_file=str(data.get("key_file") or "").strip(),
            password_env=str(data.get("password_env") or "").strip(),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        problems = []
        if not self.host:
            problems.append("informe o servidor SFTP")
        if not self.username:
            problems.append("informe o usuário SFTP")
        if not 0 < self.port < 65536:
            problems.append("porta SFTP fora do intervalo 1-65535")
        if not self.host_key and not self.known_hosts_file:
            problems.append("informe a chave pública do servidor ou um arquivo known_hosts")
        if self.host_key and not _valid_public_key(self.host_key):
            problems.append("chave do servidor deve ter o formato 'tipo base64', ex.: ssh-ed25519 AAAA…")
        if not self.key_file and not self.password_env:
            problems.append("informe a chave privada ou a variável de ambiente com a senha")
        if self.password_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.password_env):
            problems.append("nome de variável de ambiente inválido para a senha")
        for folder in (self.outbox_dir, self.inbox_dir):
            if not folder or ".." in folder.split("/"):
                problems.append(f"pasta remota inválida: {folder!r}")
        if problems:
            raise ExchangeError("; ".join(problems) + ".")

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "username": self.username,
            "port": self.port,
            "outbox_dir": self.outbox_dir,
            "inbox_dir": self.inbox_dir,
            "host_key": self.host_key,
            "known_hosts_file": self.known_hosts_file,
            "key_file": self.key_file,
            "password_env": self.password_env,
        }


KEY_TYPES = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-\S+)$")


def _public_key_line(text: str) -> str:
    """ "type base64", also from a whole known_hosts line ("host type base64 comment")."""
    tokens = text.split()
    if len(tokens) >= 3 and not KEY_TYPES.match(tokens[0]) and KEY_TYPES.match(tokens[1]):
        tokens = tokens[1:]
    return " ".join(tokens[:2])


def _valid_public_key(line: str) -> bool:
    parts = line.split()
    if len(parts) != 2 or not KEY_TYPES.match(parts[0]):
        return False
    try:
        base64.b64decode(parts[1], validate=True)
    except ValueError:
        return False
    return True


class SftpTransport:
    """The same exchange over SFTP. The connection refuses any server whose host key is not the
    configured one (no trust on first use)."""

    def __init__(self, settings: SftpSettings, environ: dict[str, str] | None = None) -> None:
        import paramiko

        self.settings = settings
        self.endpoint = f"sftp:{settings.username}@{settings.host}:{settings.port}/{settings.inbox_dir}"
        env = os.environ if environ is None else environ
        secret = None
        if settings.password_env:
            secret = env.get(settings.password_env)
            if not secret:
                raise ExchangeError(
                    f"variável de ambiente {settings.password_env} não definida (senha SFTP)."
                )
        self._ssh = paramiko.SSHClient()
        self._load_host_keys()
        self._ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            self._ssh.connect(
                settings.host,
                port=settings.port,
                username=settings.username,
                key_filename=settings.key_file or None,
                password=secret if not settings.key_file else None,
                passphrase=secret if settings.key_file else None,
                look_for_keys=False,
                allow_agent=False,
                timeout=SFTP_TIMEOUT_SECONDS,
                banner_timeout=SFTP_TIMEOUT_SECONDS,
                auth_timeout=SFTP_TIMEOUT_SECONDS,
            )
            self._sftp = self._ssh.open_sftp()
            self._sftp.get_channel().settimeout(SFTP_TIMEOUT_SECONDS)  # type: ignore[union-attr]
        except paramiko.BadHostKeyException:
            self._ssh.close()
            raise HostKeyError(
                f"a chave do servidor SFTP {settings.host}:{settings.port} não é a configurada; "
                "conexão recusada."
            ) from None
        except paramiko.SSHException as error:
            self._ssh.close()
            if "not found in known_hosts" in str(error):
                raise HostKeyError(
                    f"servidor SFTP {settings.host}:{settings.port} desconhecido: "
                    "sua chave não está configurada."
                ) from None
            raise ExchangeError(
                f"falha na conexão SFTP com {settings.host}:{settings.port}: {error}"
            ) from None
        except OSError as error:
            self._ssh.close()
            raise ExchangeError(
                f"servidor SFTP {settings.host}:{settings.port} inacessível: {error.strerror or error}"
            ) from None
        for folder in (
            settings.outbox_dir,
            settings.inbox_dir,
            posixpath.join(settings.inbox_dir, ARCHIVE),
            posixpath.join(settings.inbox_dir, REJECTED),
        ):
            self._ensure_dir(folder)

    def _load_host_keys(self) -> None:
        import paramiko

        keys = self._ssh.get_host_keys()
        settings = self.settings
        if settings.known_hosts_file:
            try:
                self._ssh.load_host_keys(settings.known_hosts_file)
            except OSError as error:
                raise ExchangeError(
                    f"arquivo known_hosts inacessível ({settings.known_hosts_file}): "
                    f"{error.strerror or error}"
                ) from None
        if settings.host_key:
            key_type, blob = settings.host_key.split()[:2]
            try:
                key = paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
            except Exception:
                raise ExchangeError("chave pública do servidor SFTP inválida.") from None
            name = settings.host if settings.port == 22 else f"[{settings.host}]:{settings.port}"
            keys.add(name, key_type, key)

    def _ensure_dir(self, path: str) -> None:
        try:
            self._sftp.stat(path)
        except FileNotFoundError:
            try:
                self._sftp.mkdir(path)
            except OSError as error:
                raise ExchangeError(f"não foi possível criar a pasta remota {path}: {error}") from None

    def _wrap(self, action: str, error: Exception) -> ExchangeError:
        return ExchangeError(f"SFTP: falha ao {action}: {error}")

    def put(self, name: str, data: bytes) -> None:
        final = posixpath.join(self.settings.outbox_dir, _safe_name(name))
        tmp = posixpath.join(self.settings.outbox_dir, f".{name}.part")
        try:
            self._sftp.putfo(io.BytesIO(data), tmp, file_size=len(data), confirm=True)
            self._sftp.posix_rename(tmp, final)
        except (OSError, EOFError) as error:
            with contextlib.suppress(OSError, EOFError):
                self._sftp.remove(tmp)
            raise self._wrap(f"enviar {name}", error) from None

    def incoming(self) -> list[str]:
        try:
            entries = self._sftp.listdir_attr(self.settings.inbox_dir)
        except (OSError, EOFError) as error:
            raise self._wrap("listar a pasta de retorno", error) from None
        return sorted(
            e.filename
            for e in entries
            if e.st_mode is not None and stat.S_ISREG(e.st_mode) and visible(e.filename)
        )

    def read(self, name: str) -> bytes:
        path = posixpath.join(self.settings.inbox_dir, _safe_name(name))
        try:
            if (self._sftp.stat(path).st_size or 0) > MAX_RETORNO_BYTES:
                raise FileTooLarge(f"{name}: arquivo maior que {MAX_RETORNO_BYTES // (1024 * 1024)} MB")
            buffer = io.BytesIO()
            self._sftp.getfo(path, buffer)
            return buffer.getvalue()
        except (OSError, EOFError) as error:
            raise self._wrap(f"ler {name}", error) from None

    def archive(self, name: str, *, rejected: bool = False) -> str:
        source = posixpath.join(self.settings.inbox_dir, _safe_name(name))
        folder = posixpath.join(self.settings.inbox_dir, REJECTED if rejected else ARCHIVE)
        try:
            existing = set(self._sftp.listdir(folder))
            target_name, n = name, 0
            while target_name in existing:
                n += 1
                target_name = f"{name}.{n}"
            target = posixpath.join(folder, target_name)
            self._sftp.posix_rename(source, target)
        except FileNotFoundError:
            return ""
        except (OSError, EOFError) as error:
            raise self._wrap(f"arquivar {name}", error) from None
        return target

    def close(self) -> None:
        try:
            self._sftp.close()
        finally:
            self._ssh.close()


# --- the adapter ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SentRemessa:
    name: str
    receipts: int
    sha256: str
    size: int


@dataclass(frozen=True)
class Retorno:
    """A retorno file as found in the inbox, and its content as SPEC section 7 CSV."""

    name: str
    raw_sha256: str
    size: int
    csv: bytes


class IntegratorAdapter:
    def __init__(self, transport: Transport, layout: Layout = BOAVISTA_PROVISIONAL) -> None:
        self.transport = transport
        self.layout = layout

    @property
    def endpoint(self) -> str:
        return self.transport.endpoint

    def build_remessa(
        self, establishment: str, as_of: date, receipts: Iterable[records.Receipt], tz: ZoneInfo
    ) -> tuple[str, bytes, int]:
        text = io.StringIO(newline="")
        count = self.layout.write_remessa(receipts, text, tz)
        return self.layout.remessa_name(establishment, as_of), text.getvalue().encode("utf-8"), count

    def send_remessa(
        self, establishment: str, as_of: date, receipts: Iterable[records.Receipt], tz: ZoneInfo
    ) -> SentRemessa:
        name, data, count = self.build_remessa(establishment, as_of, receipts, tz)
        self.transport.put(name, data)
        return SentRemessa(name, count, hashlib.sha256(data).hexdigest(), len(data))

    def pending_retornos(self) -> list[str]:
        return [name for name in self.transport.incoming() if self.layout.is_retorno(name)]

    def fetch_retorno(self, name: str) -> Retorno:
        raw = self.transport.read(name)
        return Retorno(name, hashlib.sha256(raw).hexdigest(), len(raw), self.layout.retorno_csv(name, raw))

    def fetch_retornos(self) -> Iterator[Retorno]:
        for name in self.pending_retornos():
            yield self.fetch_retorno(name)

    def archive(self, name: str, *, rejected: bool = False) -> str:
        return self.transport.archive(name, rejected=rejected)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> IntegratorAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_transport(kind: str, settings: dict[str, Any], exchange_dir: Path) -> Transport:
    """The transport of an integration (`kind` "folder" or "sftp")."""
    if kind == "folder":
        return FolderTransport(exchange_dir)
    if kind == "sftp":
        return SftpTransport(SftpSettings.from_dict(settings))
    raise ExchangeError(f"transporte desconhecido: {kind!r} (use folder ou sftp)")


def endpoint_key(kind: str, settings: dict[str, Any], exchange_dir: Path) -> str:
    """The same identity `open_transport(...).endpoint` has, without connecting."""
    if kind == "folder":
        return f"folder:{Path(exchange_dir).resolve()}"
    sftp = SftpSettings.from_dict(settings)
    return f"sftp:{sftp.username}@{sftp.host}:{sftp.port}/{sftp.inbox_dir}"
