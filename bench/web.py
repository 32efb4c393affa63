"""Web latency under load: queue page, searches and a step completion, 100,000 tickets on PostgreSQL.

    python bench/web.py [--tickets 100000] [--clients 20] [--seconds 10]

Needs wrk, the C HTTP load generator (Debian/Ubuntu: `apt-get install -y wrk`).

Creates a private PostgreSQL database (dropped at the end), migrates it with Alembic, bulk-seeds it
(COPY), serves the app with gunicorn on a free loopback port, signs an agent in through the real
login form, and drives each scenario with wrk: N concurrent connections, each sending its next
request when the previous answer is complete, for a fixed time. p50/p95 are wrk's percentiles of
the per-request latencies, printed beside the trivial /healthz measured the same way in the same
run. (wrk rather than Python threads: on this 2-core machine a Python client's own CPU competed
with the server it measures.) Prints figures; never fails on them.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import sqlalchemy as sa  # noqa: E402
from web_seed import PASSWORD, Seeded, sample, seed  # noqa: E402

from onboarding.formatting import cnpj as format_cnpj  # noqa: E402
from onboarding.migrate import upgrade  # noqa: E402

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


WRK_SCRIPT = ROOT / "bench" / "web_wrk.lua"
RESULT_LINE = re.compile(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Result:
    name: str
    requests: int
    errors: int  # unexpected statuses and socket errors
    wall: float  # seconds
    p50: float  # ms
    p95: float  # ms
    client_cpu: float  # seconds of CPU used by wrk itself
    app_cpu: float = 0.0  # seconds of CPU used by the gunicorn processes during the scenario
    db_cpu: float = 0.0  # and by the PostgreSQL backends of the bench database


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each live process, from /proc."""
    usage = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        usage[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return usage


def children(parent: int) -> list[int]:
    pids = [parent]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return pids


class CpuMeter:
    """CPU spent by the server side (app processes, database backends) between two readings: a
    figure that, unlike latency, does not depend on what else the machine is running."""

    def __init__(self, server_pid: int, database_url: str) -> None:
        self.server_pid = server_pid
        self.engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)

    def backends(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(
                conn.scalars(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            )

    def read(self) -> tuple[dict[int, float], dict[int, float]]:
        return process_cpu(children(self.server_pid)), process_cpu(self.backends())

    @staticmethod
    def spent(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(value - before.get(pid, 0.0) for pid, value in after.items())


@contextmanager
def private_database(reuse: str | None = None) -> Iterator[str]:
    if reuse:  # an already seeded database, kept afterwards (for iterating on the app)
        yield reuse
        return
    name = f"bench_web_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(database_url: str, workers: int, threads: int, worker_class: str) -> Iterator[tuple[int, int]]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret",
        "REDIS_URL": "",
        "PYTHONFAULTHANDLER": "1",
    }
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--threads", str(threads), "--worker-class", worker_class, "--keep-alive", "30",
        "--log-level", "warning", "wsgi:app",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _ = request(
                    http.client.HTTPConnection("127.0.0.1", port, timeout=2), "GET", "/healthz"
                )
                if status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(20)


def request(
    conn: http.client.HTTPConnection, method: str, path: str, body: str | None = None, cookie: str = ""
) -> tuple[int, dict[str, str], str]:
    headers = {"Cookie": cookie} if cookie else {}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    text = response.read().decode()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, text


def sign_in(port: int, email: str) -> tuple[str, str]:
    """(session cookie, CSRF token) of a signed-in agent, through the real login form."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    _, headers, page = request(conn, "GET", "/login")
    cookie = headers["set-cookie"].split(";", 1)[0]
    token = META_TOKEN.search(page).group(1)  # type: ignore[union-attr]
    form = urlencode({"email": email, "password": PASSWORD, "csrf_token": token})
    status, headers, _ = request(conn, "POST", "/login", form, cookie)
    assert status == 303, f"login failed: {status}"
    cookie = headers["set-cookie"].split(";", 1)[0]
    _, headers, page = request(conn, "GET", "/profile", cookie=cookie)  # puts a CSRF token in the session
    cookie = headers.get("set-cookie", cookie).split(";", 1)[0]
    return cookie, META_TOKEN.search(page).group(1)  # type: ignore[union-attr]


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit(
            "bench/web.py drives the server with wrk, which is not installed: "
            "apt-get install -y wrk (Debian/Ubuntu), brew install wrk (macOS)."
        )
    return wrk


def run(
    wrk: str,
    name: str,
    port: int,
    clients: int,
    seconds: int,
    requests: list[tuple[str, str, str | None]],
    cookie: str,
    ok: set[int],
) -> Result:
    """`clients` connections send `requests` in turn (over again if they run out) for `seconds`."""
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", prefix="bench_web_") as listing:
        listing.write("".join(f"{method}\t{path}\t{body or ''}\n" for method, path, body in requests))
        listing.flush()
        command = [
            wrk, "--threads", "1", "--connections", str(clients), "--duration", f"{seconds}s",
            "--timeout", "60s", "--script", str(WRK_SCRIPT), f"http://127.0.0.1:{port}",
            "--", listing.name, ",".join(str(status) for status in sorted(ok)),
        ]  # fmt: skip
        env = {**os.environ, "BENCH_COOKIE": cookie}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)  # gunicorn, not yet waited for, is not in
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = RESULT_LINE.search(done.stdout)
    if found is None:
        raise RuntimeError(f"no result from wrk:\n{done.stdout}{done.stderr}")
    count, errors, duration_us, p50_us, p95_us = map(int, found.groups())
    client_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Result(name, count, errors, duration_us / 1e6, p50_us / 1000, p95_us / 1000, client_cpu)


Scenario = tuple[str, Callable[[int], tuple[str, str, str | None]], set[int], int, bool]


def scenarios(seeded: Seeded, token: str) -> list[Scenario]:
    """(name, request maker, accepted statuses, how many different requests, warm up first)."""
    cnpjs, names, ids = seeded.cnpjs, seeded.names, seeded.contract_ticket_ids

    def get(path: str) -> tuple[str, str, None]:
        return ("GET", path, None)

    def complete(i: int) -> tuple[str, str, str]:
        body = urlencode({"notes": "contrato confirmado (bench)", "csrf_token": token})
        return ("POST", f"/tickets/{ids[i]}/steps/contract/complete", body)

    def cnpj_formatted(i: int) -> tuple[str, str, None]:
        return get("/tickets?q=" + quote(format_cnpj(cnpjs[i % len(cnpjs)])))

    def cnpj_digits(i: int) -> tuple[str, str, None]:
        return get("/tickets?status=all&q=" + cnpjs[i % len(cnpjs)])

    def name(i: int) -> tuple[str, str, None]:
        return get("/tickets?status=all&q=" + quote(names[i % len(names)]))

    def number(i: int) -> tuple[str, str, None]:
        return get(f"/tickets?status=all&q=EX-{(i * 7919) % seeded.tickets + 1:06d}")

    n = 1000  # a search runs through its list and starts it again
    return [
        ("healthz", lambda i: get("/healthz"), {200}, 1, True),
        ("queue page (/)", lambda i: get("/"), {200}, 1, True),
        ("queue p2, my tickets", lambda i: get("/tickets?assignee=me&page=2"), {200}, 1, True),
        ("search CNPJ formatted", cnpj_formatted, {200}, n, True),
        ("search CNPJ digits", cnpj_digits, {200}, n, True),
        ("search name", name, {200}, n, True),
        ("search ticket number", number, {200}, n, True),
        # each ticket's step once: a repeat would be refused (409) and counted as an error
        ("complete step (POST)", complete, {303}, len(ids), False),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=10, help="per scenario (the POST one: half)")
    # Sync workers: with gunicorn 27.0.1's gthread workers (threads > 1) workers died of SIGSEGV
    # under this load here (Python 3.11.7), even with every C extension swapped for pure Python;
    # sync workers and werkzeug's threaded server never did.
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class")
    parser.add_argument("--database-url", help="reuse a database seeded by an earlier run (kept)")
    args = parser.parse_args()
    wrk = find_wrk()

    with private_database(args.database_url) as url:
        started = time.perf_counter()
        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        if args.database_url:
            seeded = sample(conninfo)
        else:
            upgrade(url)
            seeded = seed(conninfo, args.tickets)
        took = time.perf_counter() - started
        print(
            f"seeded {args.tickets:,} tickets (migrate + COPY + VACUUM ANALYZE) in {took:.1f} s", flush=True
        )
        with gunicorn(url, args.workers, args.threads, args.worker_class) as (port, server_pid):
            cookie, token = sign_in(port, seeded.agent_email)
            meter = CpuMeter(server_pid, url)
            results = []
            for name, make, ok, count, warm_up in scenarios(seeded, token):
                requests = [make(i) for i in range(count)]
                seconds = args.seconds if warm_up else max(1, args.seconds // 2)
                if warm_up:
                    run(wrk, name, port, args.clients, 1, requests, cookie, ok)
                app_before, db_before = meter.read()
                result = run(wrk, name, port, args.clients, seconds, requests, cookie, ok)
                app_after, db_after = meter.read()
                last = replace(
                    result,
                    app_cpu=meter.spent(app_before, app_after),
                    db_cpu=meter.spent(db_before, db_after),
                )
                results.append(last)
                print(f"  {name}: p50 {last.p50:.1f} ms, p95 {last.p95:.1f} ms", flush=True)
    report(results, args)


def report(results: list[Result], args: argparse.Namespace) -> None:
    base = results[0]
    print(
        f"\n{args.clients} concurrent clients (wrk), gunicorn {args.workers} {args.worker_class} workers x "
        f"{args.threads} threads, {os.cpu_count()} CPUs, {args.tickets:,} tickets"
    )
    print(
        f"{'scenario':<26} {'n':>5} {'err':>4} {'p50 ms':>7} {'p95 ms':>7} {'req/s':>6} {'p95/healthz':>11}"
        f" {'app cpu ms/req':>14} {'db cpu ms/req':>13} {'wrk cpu ms/req':>14}"
    )
    for r in results:
        n = r.requests or 1
        print(
            f"{r.name:<26} {r.requests:>5} {r.errors:>4} {r.p50:>7.1f} {r.p95:>7.1f} "
            f"{r.requests / r.wall:>6.0f} {r.p95 / base.p95:>10.1f}x "
            f"{r.app_cpu / n * 1000:>14.2f} {r.db_cpu / n * 1000:>13.2f} {r.client_cpu / n * 1000:>14.2f}"
        )
    one, five, _ = os.getloadavg()
    print(
        f"load average at the end: {one:.1f} (1 min), {five:.1f} (5 min): other work on this machine"
        " adds latency"
    )
    print("target (SPEC 9): queue page and search p95 < 100 ms")


if __name__ == "__main__":
    main()
