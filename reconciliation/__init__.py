"""Reconciliation of ERP card receipts against the integrator's retorno (SPEC sections 6-8)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the `recon` CLI group and the reconciliation API endpoints."""
    from reconciliation import api, cli

    app.cli.add_command(cli.recon_cli)
    app.register_blueprint(api.bp)
