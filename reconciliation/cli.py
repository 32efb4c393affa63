"""`flask --app wsgi recon ...` (SPEC section 4): imports, corrections, runs, remessa and export.

Every command prints a JSON object on its last line, exits non-zero with a one-line reason on bad
input and changes nothing it cannot finish. Progress bars appear only when stdout is a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup

from onboarding import auth
from onboarding.cli import domain_errors_exit, fail, unit_of_work
from reconciliation import corrections, engine, importers, remessa

recon_cli = AppGroup("recon", help="Conciliação de recebimentos de cartão com o retorno da integradora.")


def _json_line(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, sort_keys=False))


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        fail(f"{option} inválido: {value!r} (use AAAA-MM-DD)")
    return None


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on a terminal; nothing when stdout is a pipe or a file."""
    if not sys.stdout.isatty() or total <= 0:
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stdout) as bar:
        yield bar.update


def _import(path_text: str, kind: str) -> None:
    path = Path(path_text)
    if not path.is_file():
        fail(f"arquivo não encontrado: {path}")
    tz = engine.settings().tz
    with (
        _progress(path.stat().st_size, f"Importando {path.name}") as progress,
        unit_of_work() as session,
    ):
        run_import = importers.import_sales_file if kind == importers.SALES else importers.import_retorno_file
        report = run_import(session, path, tz=tz, progress=progress)
    if report.already_imported_batch is not None:
        click.echo(f"arquivo já importado (lote {report.already_imported_batch}): nada foi alterado")
    for error in report.errors:
        click.echo(str(error))
    _json_line(report.summary())


@recon_cli.command("import-sales")
@click.argument("file")
@domain_errors_exit
def import_sales(file: str) -> None:
    """Importa o CSV de recebimentos de cartão do ERP."""
    _import(file, importers.SALES)


@recon_cli.command("import-retorno")
@click.argument("file")
@domain_errors_exit
def import_retorno(file: str) -> None:
    """Importa o CSV de retorno da integradora."""
    _import(file, importers.RETORNO)


@recon_cli.command("correct")
@click.argument("sale_id")
@click.option("--authorization-code", default=None)
@click.option("--nsu", default=None)
@click.option("--installments", default=None)
@click.option("--brand", default=None)
@click.option("--payment-type", default=None)
@click.option("--amount", default=None)
@click.option("--by", "by_email", default=None, help="E-mail do usuário que faz a correção (auditoria).")
@domain_errors_exit
def correct(sale_id: str, by_email: str | None, **options: str | None) -> None:
    """Corrige um recebimento, como na tela de correção."""
    changes = {name: value for name, value in options.items() if value is not None}
    tz = engine.settings().tz
    with unit_of_work() as session:
        actor = auth.user_by_email(session, by_email) if by_email else None
        stored, correction = corrections.correct_sale(
            session, sale_id, changes, actor=actor, source="cli", tz=tz
        )
        summary = {
            "sale_id": stored.sale_id,
            "correction_id": correction.id,
            "corrected_on": correction.corrected_on.isoformat(),
            "before": correction.before,
            "after": correction.after,
        }
    click.echo(f"recebimento {stored.sale_id} corrigido em {correction.corrected_on:%d/%m/%Y}")
    _json_line(summary)


@recon_cli.command("run")
@click.option("--as-of", "as_of_text", default=None, help="Data de referência AAAA-MM-DD (padrão: hoje).")
@click.option("--establishment", default=None, help="Só este código de estabelecimento.")
@click.option("--full", is_flag=True, help="Recalcula também os estabelecimentos sem mudanças.")
@domain_errors_exit
def run(as_of_text: str | None, establishment: str | None, full: bool) -> None:
    """Concilia e imprime um resumo JSON na última linha."""
    as_of = _parse_date(as_of_text, "--as-of")
    total = 0
    if sys.stdout.isatty():
        with unit_of_work() as session:
            total = engine.count_records(session, engine.normalize_code(establishment))[0]
    with _progress(total, "Conciliando") as progress:
        outcome = engine.run_reconciliation(
            as_of=as_of, establishment=establishment, force=full, trigger="cli", progress=progress
        )
    _json_line(outcome.summary())


@recon_cli.command("remessa")
@click.option("--as-of", "as_of_text", default=None)
@click.option("--establishment", default=None)
@click.option("--out", "out", required=True, help="Arquivo a escrever.")
@domain_errors_exit
def remessa_cmd(as_of_text: str | None, establishment: str | None, out: str) -> None:
    """Escreve a remessa que seria enviada: recebimentos da janela e corrigidos a reenviar."""
    from reconciliation import clock

    conf = engine.settings()
    as_of = _parse_date(as_of_text, "--as-of") or clock.today(conf.tz)
    path = _output_path(out)
    code = engine.normalize_code(establishment)
    with unit_of_work() as session:
        count = remessa.write_remessa_file(
            session, path, as_of=as_of, lookback_days=conf.lookback_days, establishment=code, tz=conf.tz
        )
    _json_line({"out": str(path), "as_of": as_of.isoformat(), "establishment": code, "receipts": count})


@recon_cli.command("export")
@click.option("--out", "out", required=True, help="Arquivo CSV a escrever.")
@click.option("--as-of", "as_of_text", default=None, help="Padrão: a data da última conciliação.")
@domain_errors_exit
def export(out: str, as_of_text: str | None) -> None:
    """Escreve o CSV de resultado: uma linha por recebimento e por linha de retorno importados."""
    path = _output_path(out)
    as_of = engine.ensure_results(as_of=_parse_date(as_of_text, "--as-of"), trigger="export", verify=True)
    with unit_of_work() as session, remessa.atomic_text_file(path) as handle:
        count = remessa.write_results_csv(session, handle)
    _json_line({"out": str(path), "as_of": as_of.isoformat(), "rows": count})


def _output_path(out: str) -> Path:
    path = Path(out)
    if path.is_dir():
        fail(f"--out aponta para uma pasta: {path}")
    if not path.parent.is_dir():
        fail(f"pasta inexistente para --out: {path.parent}")
    return path
