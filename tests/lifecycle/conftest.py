"""Lifecycle tests: real werkzeug password hashes, with few iterations (scrypt would dominate)."""

from __future__ import annotations

from functools import partial

import pytest
from werkzeug.security import generate_password_hash

from onboarding import auth


@pytest.fixture(autouse=True)
def fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth, "generate_password_hash", partial(generate_password_hash, method="pbkdf2:sha256:1000")
    )
