"""The E-extrato onboarding desk: app factory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask

from onboarding import api, cli, db, views
from onboarding.config import load_settings
from onboarding.subsystems import import_subsystems

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
    )
    app.config.update(load_settings(app.instance_path, config))
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    db.init_app(app)
    cli.init_app(app)
    views.init_app(app)
    for module in import_subsystems():
        init = getattr(module, "init_app", None)
        if init is not None:
            init(app)
    api.init_app(app)  # last: subsystems register their /api/v1 endpoints in their init_app
    return app
