"""Small helpers shared by the service fixtures: free ports, waiting, skip-or-fail."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require(name: str, reason: str) -> None:
    """Give up on a test because service `name` is missing.

    In CI (`CI=true`) a missing service is a broken machine, so the test fails; on a developer
    machine it is skipped with the reason.
    """
    message = f"{name} unavailable: {reason}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `predicate` until it is true; raise TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    wait_until(lambda: port_open(host, port), timeout, f"{host}:{port} to accept connections")
