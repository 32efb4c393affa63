"""`recon sync` and `recon simulate-integrator`, attached to the `recon` group (SPEC section 4)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from onboarding.cli import domain_errors_exit, fail
from reconciliation import engine, lifecycle
from reconciliation.cli import _parse_date, recon_cli
from reconciliation.simulator import IntegratorSimulator


@recon_cli.command("sync")
@click.option("--as-of", "as_of_text", default=None, help="Data de referência AAAA-MM-DD (padrão: hoje).")
@domain_errors_exit
def sync(as_of_text: str | None) -> None:
    """Uma passada do ciclo para cada integração habilitada: remessa, retornos novos, conciliação."""
    as_of = _parse_date(as_of_text, "--as-of")
    outcomes = lifecycle.sync_all(as_of=as_of, trigger="cli")
    failed = [o for o in outcomes if o.status == "failed"]
    for outcome in outcomes:
        if outcome.error:
            click.echo(f"integração {outcome.integration_id}: {outcome.error}", err=True)
    summary = {
        "as_of": (as_of or engine.clock.today(engine.settings().tz)).isoformat(),
        "integrations": len(outcomes),
        "failed": len(failed),
        "remessas": sum(len(o.remessas) for o in outcomes),
        "retornos": sum(len(o.retornos) for o in outcomes),
        "runs": sum(len(o.run_ids) for o in outcomes),
        "results": [o.summary() for o in outcomes],
    }
    click.echo(json.dumps(summary, ensure_ascii=False))
    if failed:
        sys.exit(1)


@recon_cli.command("simulate-integrator")
@click.option("--seed", default=1, type=int, show_default=True, help="Semente do cenário da operadora.")
@click.option("--exchange-dir", default=None, help="Pasta de troca (padrão: RECON_EXCHANGE_DIR).")
@click.option("--fault-rate", default=0.12, type=click.FloatRange(0, 1), show_default=True)
def simulate_integrator(seed: int, exchange_dir: str | None, fault_rate: float) -> None:
    """Faz o papel da integradora: responde cada remessa nova com um retorno (com divergências)."""
    folder = Path(exchange_dir) if exchange_dir else lifecycle.exchange_dir()
    if folder.exists() and not folder.is_dir():
        fail(f"--exchange-dir não é uma pasta: {folder}")
    simulator = IntegratorSimulator(folder, seed=seed, tz=engine.settings().tz, fault_rate=fault_rate)
    report = simulator.run_once()
    click.echo(json.dumps(report.summary(), ensure_ascii=False))
