"""Throw-away PostgreSQL databases and Redis databases/namespaces on the shared local servers.

Other test runs use the same servers at the same time, so every helper here names its own
database or keys uniquely and removes only what it created.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import redis
from psycopg import sql

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))


# -- PostgreSQL -----------------------------------------------------------------------------


def _admin_conninfo(dbname: str = "postgres") -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname} connect_timeout=5"


def postgres_available() -> str | None:
    """None when the PostgreSQL server answers, else why not."""
    try:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL on {PG_HOST}:{PG_PORT} does not answer: {exc}".strip()
    return None


@dataclass(frozen=True)
class TempDatabase:
    name: str

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.name}"

    @property
    def conninfo(self) -> str:
        """libpq connection string for psycopg.connect()."""
        return _admin_conninfo(self.name)


def create_database(prefix: str = "test") -> TempDatabase:
    """Create an empty, uniquely named database and return it."""
    safe_prefix = "".join(ch for ch in prefix.lower() if ch.isalnum() or ch == "_")[:30] or "test"
    name = f"{safe_prefix}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name))
        )
    return TempDatabase(name)


def drop_database(database: TempDatabase | str) -> None:
    """Drop the database, ending every connection still open to it."""
    name = database.name if isinstance(database, TempDatabase) else database
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_exists(name: str) -> bool:
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


@contextlib.contextmanager
def temp_database(prefix: str = "test") -> Iterator[TempDatabase]:
    database = create_database(prefix)
    try:
        yield database
    finally:
        drop_database(database)


# -- Redis ----------------------------------------------------------------------------------

_LEASE_KEY = "eextrato-tests:db-lease:{}"
_LEASE_SECONDS = 2 * 60 * 60


def redis_available() -> str | None:
    try:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=5, socket_connect_timeout=5)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return f"Redis on {REDIS_HOST}:{REDIS_PORT} does not answer: {exc}"
    return None


class RedisTestDb:
    """A Redis logical database (1-15) leased for this test only, for code that owns whole
    databases (rq). The lease lives in db 0 and expires on its own if the test run dies."""

    def __init__(self) -> None:
        self._owner = f"{os.getpid()}:{uuid.uuid4().hex}"
        self._leases = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0, socket_timeout=5)
        self.db = self._lease()
        self.client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.db, socket_timeout=5)

    def _lease(self) -> int:
        for db in range(1, 16):
            if not self._leases.set(_LEASE_KEY.format(db), self._owner, nx=True, ex=_LEASE_SECONDS):
                continue
            probe = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)
            try:
                empty = probe.dbsize() == 0
            finally:
                probe.close()
            if empty:
                return db
            # Someone outside this lease scheme uses it: leave it alone.
            self._leases.delete(_LEASE_KEY.format(db))
        raise RuntimeError("no free Redis database (1-15) to lease for this test")

    @property
    def url(self) -> str:
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.db}"

    def flush(self) -> None:
        self.client.flushdb()

    def release(self) -> None:
        self.flush()
        self.client.close()
        if self._leases.get(_LEASE_KEY.format(self.db)) == self._owner.encode():
            self._leases.delete(_LEASE_KEY.format(self.db))
        self._leases.close()


class RedisNamespace:
    """A unique key prefix in one Redis database; `flush()` deletes only keys under it."""

    def __init__(self, db: int = 0) -> None:
        self.db = db
        self.prefix = f"test:{uuid.uuid4().hex[:12]}:"
        self.client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)

    @property
    def url(self) -> str:
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.db}"

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def keys(self) -> list[bytes]:
        return sorted(self.client.scan_iter(match=f"{self.prefix}*", count=500))

    def flush(self) -> int:
        removed = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=f"{self.prefix}*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                removed += int(self.client.delete(*batch))
                batch.clear()
        if batch:
            removed += int(self.client.delete(*batch))
        return removed

    def close(self) -> None:
        self.flush()
        self.client.close()
