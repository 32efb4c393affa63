"""Settings read from the environment, by the exact names of SPEC section 2."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": "sqlite:///instance/app.db",
    "REDIS_URL": None,
    "IMAP_HOST": None,
    "IMAP_PORT": None,
    "IMAP_USER": None,
    "IMAP_PASSWORD": None,
    "IMAP_SECURITY": "ssl",
    "IMAP_FOLDER": "INBOX",
    "IMAP_PROCESSED_FOLDER": "",
    "MAIL_MAX_BYTES": 26214400,
    "SUPPORT_ADDRESS": "atendimento@vetorsolucoes.com.br",
    "INTEGRATOR_DOMAINS": "boavistatecnologia.com.br",
    "SMTP_HOST": None,
    "SMTP_PORT": None,
    "SMTP_USER": None,
    "SMTP_PASSWORD": None,
    "SMTP_SECURITY": "starttls",
    "MAIL_FROM": None,
    "FINANCE_ADDRESS": None,
    "DEV_TEAM_ADDRESS": None,
    "RECON_LOOKBACK_DAYS": 3,
    "RECON_EXCHANGE_DIR": "instance/exchange",
    "TIMEZONE": "America/Sao_Paulo",
    "SECRET_KEY": None,
}

INT_SETTINGS = {"MAIL_MAX_BYTES", "RECON_LOOKBACK_DAYS", "IMAP_PORT", "SMTP_PORT"}


def load_settings(instance_path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the environment, then explicit overrides (tests)."""
    settings: dict[str, Any] = dict(DEFAULTS)
    for name in DEFAULTS:
        value = os.environ.get(name)
        if value is not None and value != "":
            settings[name] = value
        elif value == "" and name == "IMAP_PROCESSED_FOLDER":
            settings[name] = ""
    settings.update(overrides or {})
    for name in INT_SETTINGS:
        if settings.get(name) not in (None, ""):
            settings[name] = int(settings[name])
    settings["DATABASE_URL"] = _absolute_sqlite_url(settings["DATABASE_URL"], Path(instance_path).parent)
    if not settings.get("SECRET_KEY"):
        settings["SECRET_KEY"] = _instance_secret(Path(instance_path))
    return settings


def integrator_domains(settings: dict[str, Any]) -> list[str]:
    raw = settings.get("INTEGRATOR_DOMAINS") or ""
    return [d.strip().lower() for d in raw.split(",") if d.strip()]


def _absolute_sqlite_url(url: str, project_root: Path) -> str:
    """`sqlite:///instance/app.db` is relative to the project, whatever the working directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        path = project_root / url[len(prefix) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(path)
    return url


def _instance_secret(instance_path: Path) -> str:
    """A random key generated once per install and kept in instance/ (never in the repo)."""
    instance_path.mkdir(parents=True, exist_ok=True)
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()
