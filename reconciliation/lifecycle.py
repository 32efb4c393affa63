"""The integration's life after onboarding: enabled once, then reconciled every day.

- `configure_integration`: the developer's settings (establishment codes, transport).
- `on_task_returned` (an `onboarding.services.on_dev_task_returned` hook): the integration is
  enabled and its first pass is queued to run as soon as the return commits.
- `sync_integration`: one pass of the cycle for one integration: new retorno files in (each
  processed once, then archived), the daily remessa out (the window's receipts plus corrected
  receipts to send again), then a run for every establishment whose results are stale, each
  under a lock so two runs of one establishment never overlap. A failed pass is recorded on the
  integration with its reason and retried with back-off by `sync_due` (the `rq cron` job).
- `sync_all`: `recon sync`, one pass for every enabled integration.
- `validation_guard`: step 3 completes only once every divergence of the validation run (the
  first run that had the integrator's retorno) has been triaged (see `reconciliation.triage`).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from onboarding import audit, services
from onboarding import db as desk_db
from onboarding.db import utcnow
from onboarding.errors import InvalidInput, NotFound, WorkflowError
from onboarding.jobs import enqueue_after_commit, exclusive, job
from onboarding.models import DevTask, DevTaskStatus, Ticket, User
from reconciliation import clock, engine, exchange, importers, records, remessa, triage, window
from reconciliation.integration_models import (
    ExchangeFile,
    Integration,
    IntegrationStatus,
    SyncPass,
    SyncStatus,
    TransportKind,
)
from reconciliation.models import Establishment, StoredReceipt, StoredStatementRow

log = logging.getLogger(__name__)

RETRY_DELAYS = (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))
DEFAULT_REMESSA_TIME = "06:00"
# Settings keys that would hold a secret: refused, secrets come from the environment.
SECRET_KEYS = frozenset({"password", "passphrase", "secret", "private_key", "token", "key"})
TRANSPORT_LABELS = {TransportKind.FOLDER: "Pasta de troca", TransportKind.SFTP: "SFTP"}


# --- configuration ---------------------------------------------------------------------------


def exchange_dir() -> Path:
    """RECON_EXCHANGE_DIR; a relative path is taken from the project folder."""
    from onboarding import PROJECT_ROOT

    path = Path(current_app.config.get("RECON_EXCHANGE_DIR") or "instance/exchange")
    return path if path.is_absolute() else PROJECT_ROOT / path


def integration_for_ticket(db: Session, ticket_id: int) -> Integration | None:
    return db.scalars(sa.select(Integration).where(Integration.ticket_id == ticket_id)).one_or_none()


def get_integration(db: Session, integration_id: int) -> Integration:
    integration = db.get(Integration, integration_id)
    if integration is None:
        raise NotFound("integration_not_found", f"Integração {integration_id} não encontrada.")
    return integration


def parse_remessa_time(value: str | None) -> str:
    """ "6:00", "06:00" or "06:00:00" as "06:00"; anything else is refused."""
    text = (value or "").strip() or DEFAULT_REMESSA_TIME
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::00)?", text)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise InvalidInput("invalid_remessa_time", f"Horário da remessa inválido: {text} (use HH:MM).")
    return f"{int(match[1]):02d}:{match[2]}"


def clean_settings(transport: str, settings: dict[str, Any] | None) -> dict[str, Any]:
    """The transport's settings, checked; refuses secrets (they belong in the environment)."""
    data = {k: v for k, v in (settings or {}).items() if v not in (None, "")}
    secrets_given = sorted(k for k in data if k.lower() in SECRET_KEYS)
    if secrets_given:
        raise InvalidInput(
            "secret_in_settings",
            "Senhas e chaves não são guardadas no banco: informe o nome da variável de ambiente "
            f"(password_env) ou o caminho da chave (key_file). Campos recusados: {', '.join(secrets_given)}.",
        )
    if transport == TransportKind.FOLDER:
        return {}
    if transport == TransportKind.SFTP:
        unknown = sorted(set(data) - set(exchange.SftpSettings.__dataclass_fields__))
        if unknown:
            raise InvalidInput(
                "invalid_transport_settings",
                f"Configuração SFTP com campos desconhecidos: {', '.join(unknown)}.",
            )
        try:
            return exchange.SftpSettings.from_dict(data).as_dict()
        except exchange.ExchangeError as error:
            raise InvalidInput("invalid_transport_settings", f"Configuração SFTP inválida: {error}") from None
    raise InvalidInput("invalid_transport", f"Transporte desconhecido: {transport} (use folder ou sftp).")


def configure_integration(
    db: Session,
    actor: User | None,
    ticket_id: int,
    *,
    establishment_codes: Iterable[str] | None,
    transport: str = TransportKind.FOLDER,
    settings: dict[str, Any] | None = None,
    remessa_time: str | None = None,
) -> Integration:
    """The developer's configuration of a ticket's integration. While the dev task is taken or
    enabled, the codes also enable it (`services.enable_dev_task`); once it was returned the codes
    stay as enabled and only the transport can change."""
    services.require_role(actor, services.DEVELOPERS, "configurar a integração")
    ticket = services.get_ticket(db, ticket_id, lock=True)
    task = ticket.dev_task
    if task is None:
        raise WorkflowError(
            "dev_task_missing",
            "A integração só pode ser configurada depois do encaminhamento ao desenvolvimento.",
        )
    if ticket.status == "closed":
        raise WorkflowError(
            "ticket_closed", f"O chamado {ticket.number} está encerrado e não aceita alterações."
        )
    transport = (transport or TransportKind.FOLDER).strip().lower()
    clean = clean_settings(transport, settings)
    when = parse_remessa_time(remessa_time)
    codes = services.clean_codes(establishment_codes)
    if task.status in (DevTaskStatus.TAKEN, DevTaskStatus.ENABLED):
        services.enable_dev_task(db, actor, task.id, codes)
    elif task.status == DevTaskStatus.OPEN:
        raise WorkflowError("dev_task_not_taken", "Assuma a tarefa antes de configurar a integração.")
    elif codes and [records.norm_code(c) for c in codes] != list(_codes_of(task)):
        raise WorkflowError(
            "integration_codes_locked",
            "A integração já foi devolvida: os códigos de estabelecimento não mudam mais por aqui.",
        )
    integration = integration_for_ticket(db, ticket_id)
    before = _config_state(integration) if integration is not None else None
    if integration is None:
        integration = Integration(ticket_id=ticket.id, dev_task_id=task.id)
        db.add(integration)
    integration.establishment_codes = list(_codes_of(task))
    integration.transport = transport
    integration.settings = clean
    integration.remessa_time = when
    integration.configured_by_id = actor.id if actor is not None else None
    integration.configured_at = utcnow()
    db.flush()
    audit.record(
        db,
        actor,
        "recon.integration_configured",
        integration,
        before=before,
        after={**_config_state(integration), "ticket_id": ticket.id},
    )  # shown on the ticket's timeline by reconciliation.timeline, in pt-BR
    return integration


def _codes_of(task: DevTask) -> list[str]:
    return [c for c in (records.norm_code(code) for code in task.establishment_codes) if c]


def _config_state(integration: Integration) -> dict[str, Any]:
    return {
        "status": integration.status,
        "establishment_codes": list(integration.establishment_codes),
        "transport": integration.transport,
        "settings": dict(integration.settings or {}),
        "remessa_time": integration.remessa_time,
    }


def on_task_returned(db: Session, task: DevTask, actor: User | None) -> None:
    """The developer returned the task: enable the integration, queue its first pass."""
    integration = integration_for_ticket(db, task.ticket_id)
    if integration is None:
        integration = Integration(
            ticket_id=task.ticket_id, dev_task_id=task.id, transport=TransportKind.FOLDER
        )
        db.add(integration)
    integration.dev_task_id = task.id
    integration.establishment_codes = list(_codes_of(task))
    if integration.status != IntegrationStatus.ENABLED:
        integration.status = IntegrationStatus.ENABLED
        integration.enabled_at = utcnow()
    db.flush()  # the return itself is audited by onboarding ("dev_task.returned")
    enqueue_after_commit(db, first_run, integration.id, job_id=f"recon-first-run-{integration.id}")


@job
def first_run(integration_id: int) -> dict[str, Any]:
    """The job queued when the task is returned (rq, or in-process after the commit)."""
    return sync_integration(integration_id, trigger="first_run").summary()


@job
def sync_job(integration_id: int, trigger: str = "manual") -> dict[str, Any]:
    return sync_integration(integration_id, trigger=trigger).summary()


@job
def rerun_job(integration_id: int) -> dict[str, Any]:
    """After a correction: reconcile again now (the remessa keeps its daily time)."""
    return sync_integration(integration_id, trigger="correction", remessa=False).summary()


def request_sync(db: Session, actor: User | None, integration_id: int) -> Integration:
    """ "Sincronizar agora" on the screens: a pass queued after the caller's commit."""
    services.require_role(actor, services.AGENTS | services.DEVELOPERS, "sincronizar a integração")
    integration = get_integration(db, integration_id)
    if integration.status != IntegrationStatus.ENABLED:
        raise WorkflowError(
            "integration_not_enabled", "A integração ainda não foi devolvida pelo desenvolvimento."
        )
    enqueue_after_commit(db, sync_job, integration.id, "manual")
    return integration


# --- one pass --------------------------------------------------------------------------------


@dataclass
class SyncOutcome:
    integration_id: int
    ticket_id: int | None = None
    as_of: date | None = None
    status: str = SyncStatus.FINISHED
    pass_id: int | None = None
    remessas: list[str] = field(default_factory=list)
    remessa_receipts: int = 0
    retornos: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    run_ids: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    validation_run_id: int | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "integration": self.integration_id,
            "ticket_id": self.ticket_id,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "status": str(self.status),
            "remessas": self.remessas,
            "remessa_receipts": self.remessa_receipts,
            "retornos": self.retornos,
            "rejected": self.rejected,
            "runs": self.run_ids,
            "skipped": self.skipped,
            "validation_run": self.validation_run_id,
            "error": self.error,
        }


@dataclass(frozen=True)
class _Plan:
    """What a pass needs to know about its integration, read once (plain values)."""

    integration_id: int
    ticket_id: int
    codes: tuple[str, ...]
    transport: str
    settings: dict[str, Any]
    remessa_time: time
    first_run_done: bool
    validation_done: bool
    start_date: date | None


def sync_integration(
    integration_id: int, *, as_of: date | None = None, trigger: str = "cli", remessa: bool | None = None
) -> SyncOutcome:
    """One pass for one integration; never raises for a failure of the exchange or of a run: it is
    recorded (pass `failed`, reason on the integration) and retried later. `remessa` forces (True)
    or skips (False) the daily remessa; by default it goes when due."""
    conf = engine.settings()
    as_of = as_of or clock.today(conf.tz)
    outcome = SyncOutcome(integration_id=integration_id, as_of=as_of)
    with exclusive(f"recon-integration:{integration_id}", timeout=3600) as acquired:
        if not acquired:
            outcome.status = "busy"
            outcome.error = "outra sincronização desta integração está em andamento"
            return outcome
        with desk_db.session_scope() as db:
            integration = get_integration(db, integration_id)
            outcome.ticket_id = integration.ticket_id
            if integration.status != IntegrationStatus.ENABLED:
                outcome.status = "disabled"
                outcome.error = "integração não habilitada"
                return outcome
            plan = _plan(integration)
            sync_pass = SyncPass(
                integration_id=integration_id,
                trigger=trigger,
                as_of=as_of,
                attempt=integration.consecutive_failures + 1,
                started_at=clock.now(),
            )
            db.add(sync_pass)
            db.flush()
            outcome.pass_id = sync_pass.id
        try:
            _run_pass(plan, outcome, as_of, trigger, remessa, conf)
        except Exception as error:  # recorded and retried; one integration never stops the others
            log.exception("sync of integration %s failed", integration_id)
            outcome.status = SyncStatus.FAILED
            outcome.error = _reason(error)
            _record_failure(outcome)
            return outcome
        _record_success(outcome)
    return outcome


def _plan(integration: Integration) -> _Plan:
    return _Plan(
        integration_id=integration.id,
        ticket_id=integration.ticket_id,
        codes=tuple(c for c in (records.norm_code(x) for x in integration.establishment_codes) if c),
        transport=integration.transport,
        settings=dict(integration.settings or {}),
        remessa_time=time.fromisoformat(integration.remessa_time or DEFAULT_REMESSA_TIME),
        first_run_done=integration.first_run_id is not None,
        validation_done=integration.validation_run_id is not None,
        start_date=integration.start_date,
    )


def _reason(error: Exception) -> str:
    if isinstance(error, exchange.ExchangeError):
        return str(error)
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {message}"[:2000]


def _run_pass(
    plan: _Plan,
    outcome: SyncOutcome,
    as_of: date,
    trigger: str,
    force_remessa: bool | None,
    conf: engine.Settings,
) -> None:
    exchange_error: exchange.ExchangeError | None = None
    try:
        transport = exchange.open_transport(plan.transport, plan.settings, exchange_dir())
        with exchange.IntegratorAdapter(transport) as adapter:
            _poll_inbox(adapter, outcome, conf)
            if _remessa_due(plan, as_of, trigger, force_remessa, conf):
                _send_remessas(adapter, plan, outcome, as_of, conf)
    except exchange.ExchangeError as error:
        exchange_error = error  # still reconcile what is here (corrections, earlier retornos)
    _run_reconciliations(plan, outcome, as_of, conf)
    if exchange_error is not None:
        raise exchange_error


def _remessa_due(plan: _Plan, as_of: date, trigger: str, forced: bool | None, conf: engine.Settings) -> bool:
    """Once a day per establishment. Passes asked for by people or commands (and the first one)
    send it at once; the scheduled passes wait for the integration's remessa time."""
    if forced is not None:
        return forced
    if trigger in ("schedule", "retry") and plan.first_run_done:
        now_local = clock.now().astimezone(conf.tz)
        if now_local.date() == as_of and now_local.time() < plan.remessa_time:
            return False
    return True


# --- retornos in -----------------------------------------------------------------------------


def _poll_inbox(adapter: exchange.IntegratorAdapter, outcome: SyncOutcome, conf: engine.Settings) -> None:
    """Import each new retorno file of this exchange once, then archive it. The whole exchange
    is locked: integrations sharing the folder never import the same file twice at once."""
    with exclusive(f"recon-exchange:{adapter.endpoint}", timeout=3600) as acquired:
        if not acquired:
            return  # another pass is reading this inbox; its imports mark our establishments stale
        for name in adapter.pending_retornos():
            try:
                retorno = adapter.fetch_retorno(name)
            except exchange.FileTooLarge as error:
                _record_rejected(adapter.endpoint, name, outcome.integration_id, str(error))
                adapter.archive(name, rejected=True)
                outcome.rejected.append(name)
                continue
            result = _import_retorno(adapter.endpoint, retorno, outcome.integration_id, conf)
            adapter.archive(name, rejected=result == REJECTED)
            if result == REJECTED:
                outcome.rejected.append(name)
            elif result == IMPORTED:
                outcome.retornos.append(name)


IMPORTED, ALREADY_HANDLED, REJECTED = "imported", "already_handled", "rejected"


def _record_rejected(endpoint: str, name: str, integration_id: int, reason: str, **fields: Any) -> None:
    with desk_db.session_scope() as db:
        db.add(
            ExchangeFile(
                endpoint=endpoint,
                direction="retorno",
                name=name,
                sha256=fields.get("sha256", ""),
                size=fields.get("size", 0),
                integration_id=integration_id,
                status="rejected",
                error=reason,
            )
        )


def _import_retorno(
    endpoint: str, retorno: exchange.Retorno, integration_id: int, conf: engine.Settings
) -> str:
    """Import one file once: IMPORTED, ALREADY_HANDLED (seen before: only the archive step was
    missing) or REJECTED (unreadable as a whole; recorded with its reason, nothing imported)."""
    with desk_db.session_scope() as db:
        seen = db.scalars(
            sa.select(ExchangeFile.id).where(
                ExchangeFile.endpoint == endpoint,
                ExchangeFile.direction == "retorno",
                ExchangeFile.name == retorno.name,
                ExchangeFile.sha256 == retorno.raw_sha256,
            )
        ).first()
        if seen is not None:
            return ALREADY_HANDLED
    with tempfile.TemporaryDirectory(prefix="retorno-") as folder:
        path = Path(folder) / retorno.name
        path.write_bytes(retorno.csv)
        try:
            with desk_db.session_scope() as db:
                report = importers.import_retorno_file(db, path, tz=conf.tz, source="exchange")
                codes = _codes_of_batch(db, report.batch_id)
                db.add(
                    ExchangeFile(
                        endpoint=endpoint,
                        direction="retorno",
                        name=retorno.name,
                        sha256=retorno.raw_sha256,
                        size=retorno.size,
                        integration_id=integration_id,
                        status="processed",
                        records=report.rows,
                        inserted=report.inserted,
                        ignored=report.ignored,
                        errors=len(report.errors),
                        batch_id=report.batch_id or report.already_imported_batch,
                        establishment_codes=codes,
                        error="; ".join(str(e) for e in report.errors[:20]) or None,
                    )
                )
                if codes:
                    db.execute(
                        sa.update(Integration)
                        .where(Integration.status == IntegrationStatus.ENABLED)
                        .values(last_retorno_at=clock.now())
                        .where(Integration.id.in_(_integrations_with_codes(db, codes)))
                    )
            return IMPORTED
        except importers.ImportFileError as error:
            _record_rejected(
                endpoint,
                retorno.name,
                integration_id,
                error.message,
                sha256=retorno.raw_sha256,
                size=retorno.size,
            )
            return REJECTED


def _codes_of_batch(db: Session, batch_id: int | None) -> list[str]:
    if batch_id is None:
        return []
    return sorted(
        db.scalars(
            sa.select(StoredStatementRow.establishment_code)
            .where(StoredStatementRow.batch_id == batch_id)
            .distinct()
        )
    )


def _integrations_with_codes(db: Session, codes: list[str]) -> list[int]:
    wanted = set(codes)
    return [
        i.id
        for i in db.scalars(sa.select(Integration).where(Integration.status == IntegrationStatus.ENABLED))
        if wanted & {records.norm_code(c) for c in i.establishment_codes}
    ]


# --- remessa out -----------------------------------------------------------------------------


def _send_remessas(
    adapter: exchange.IntegratorAdapter, plan: _Plan, outcome: SyncOutcome, as_of: date, conf: engine.Settings
) -> None:
    for code in plan.codes:
        with desk_db.session_scope() as db:
            # Write first: takes SQLite's write lock (PostgreSQL: the row lock) so that no
            # correction commits between reading the receipts and marking them sent.
            db.execute(
                sa.update(Integration)
                .where(Integration.id == plan.integration_id)
                .values(last_sync_at=clock.now())
            )
            if _remessa_sent(db, plan.integration_id, code, as_of):
                continue
            if db.get_bind().dialect.name == "postgresql":
                db.execute(
                    sa.select(StoredReceipt.id)
                    .where(remessa.remessa_filter(as_of, conf.lookback_days, code))
                    .where(StoredReceipt.resend_pending.is_(True))
                    .with_for_update()
                ).all()
            receipts = list(
                remessa.remessa_receipts(
                    db, as_of=as_of, lookback_days=conf.lookback_days, establishment=code, tz=conf.tz
                )
            )
            sent = adapter.send_remessa(code, as_of, receipts, conf.tz)
            remessa.mark_remessa_sent(db, as_of=as_of, lookback_days=conf.lookback_days, establishment=code)
            db.add(
                ExchangeFile(
                    endpoint=adapter.endpoint,
                    direction="remessa",
                    name=sent.name,
                    sha256=sent.sha256,
                    size=sent.size,
                    integration_id=plan.integration_id,
                    establishment_code=code,
                    as_of=as_of,
                    status="sent",
                    records=sent.receipts,
                )
            )
            integration = db.get(Integration, plan.integration_id)
            assert integration is not None
            integration.last_remessa_at = clock.now()
            integration.last_remessa_as_of = as_of
            if integration.start_date is None:
                integration.start_date = window.window_start(as_of, conf.lookback_days)
        outcome.remessas.append(sent.name)
        outcome.remessa_receipts += sent.receipts


def _remessa_sent(db: Session, integration_id: int, code: str, as_of: date) -> bool:
    return (
        db.scalars(
            sa.select(ExchangeFile.id).where(
                ExchangeFile.integration_id == integration_id,
                ExchangeFile.direction == "remessa",
                ExchangeFile.establishment_code == code,
                ExchangeFile.as_of == as_of,
            )
        ).first()
        is not None
    )


# --- runs ------------------------------------------------------------------------------------


def _run_reconciliations(plan: _Plan, outcome: SyncOutcome, as_of: date, conf: engine.Settings) -> None:
    """Reconcile every establishment whose stored results are not those of `as_of` (new retorno,
    a correction, another day) — and all of them on the first pass."""
    for code in plan.codes:
        with exclusive(f"recon-run:{code}", timeout=3600) as acquired:
            if not acquired:
                outcome.skipped.append(code)  # another run of this establishment: the next pass
                continue
            with desk_db.session_scope() as db:
                if db.get(Establishment, code) is None:
                    importers.bump_establishments(db, [code])
                current = engine.results_are_current(db, as_of, code, conf.lookback_days)
            if current and plan.first_run_done:
                continue
            result = engine.run_reconciliation(as_of=as_of, establishment=code, trigger="sync")
            outcome.run_ids.append(result.run_id)
    if outcome.skipped:
        outcome.status = SyncStatus.PARTIAL
    with desk_db.session_scope() as db:
        integration = db.get(Integration, plan.integration_id)
        assert integration is not None
        if integration.start_date is None:
            integration.start_date = window.window_start(as_of, conf.lookback_days)
        now = clock.now()
        if outcome.run_ids:
            integration.last_run_id = outcome.run_ids[-1]
            integration.last_run_at = now
            if integration.first_run_id is None:
                integration.first_run_id = outcome.run_ids[-1]
                integration.first_run_at = now
        # The run whose results are stored now (possibly made outside this cycle, e.g. `recon run`).
        current_run = db.scalar(
            sa.select(sa.func.max(Establishment.result_run_id)).where(Establishment.code.in_(plan.codes))
        )
        validation = (
            integration.validation_run_id is None
            and not outcome.skipped
            and integration.first_run_id is not None
            and current_run is not None
            and _has_retorno(db, plan.codes, integration.start_date)
        )
        if validation:
            integration.validation_run_id = current_run
            integration.validation_run_at = now
            outcome.validation_run_id = current_run
        if outcome.run_ids or validation:
            triage.refresh(db, integration, validation=validation)


def _has_retorno(db: Session, codes: Iterable[str], start: date | None) -> bool:
    query = sa.select(StoredStatementRow.id).where(StoredStatementRow.establishment_code.in_(list(codes)))
    if start is not None:
        query = query.where(StoredStatementRow.sale_date >= start)
    return db.scalars(query.limit(1)).first() is not None


# --- bookkeeping -----------------------------------------------------------------------------


def _record_success(outcome: SyncOutcome) -> None:
    with desk_db.session_scope() as db:
        sync_pass = db.get(SyncPass, outcome.pass_id)
        integration = db.get(Integration, outcome.integration_id)
        assert sync_pass is not None and integration is not None
        now = clock.now()
        sync_pass.status = outcome.status
        sync_pass.finished_at = now
        _copy_counts(sync_pass, outcome)
        integration.last_sync_at = now
        integration.last_sync_status = outcome.status
        integration.consecutive_failures = 0
        integration.next_retry_at = None
        integration.last_error = None


def _record_failure(outcome: SyncOutcome) -> None:
    with desk_db.session_scope() as db:
        sync_pass = db.get(SyncPass, outcome.pass_id)
        integration = db.get(Integration, outcome.integration_id)
        assert sync_pass is not None and integration is not None
        now = clock.now()
        sync_pass.status = SyncStatus.FAILED
        sync_pass.finished_at = now
        sync_pass.error = outcome.error
        _copy_counts(sync_pass, outcome)
        integration.last_sync_at = now
        integration.last_sync_status = SyncStatus.FAILED
        integration.last_error = outcome.error
        integration.last_error_at = now
        integration.consecutive_failures += 1
        delay = RETRY_DELAYS[min(integration.consecutive_failures, len(RETRY_DELAYS)) - 1]
        integration.next_retry_at = now + delay


def _copy_counts(sync_pass: SyncPass, outcome: SyncOutcome) -> None:
    sync_pass.remessas = len(outcome.remessas)
    sync_pass.remessa_receipts = outcome.remessa_receipts
    sync_pass.retornos = len(outcome.retornos)
    sync_pass.run_ids = [str(r) for r in outcome.run_ids]
    sync_pass.skipped = list(outcome.skipped)


# --- every integration -----------------------------------------------------------------------


def enabled_integration_ids(db: Session) -> list[int]:
    return list(
        db.scalars(
            sa.select(Integration.id)
            .where(Integration.status == IntegrationStatus.ENABLED)
            .order_by(Integration.id)
        )
    )


def sync_all(*, as_of: date | None = None, trigger: str = "cli") -> list[SyncOutcome]:
    """`recon sync`: one pass for every enabled integration, remessa included."""
    with desk_db.session_scope() as db:
        ids = enabled_integration_ids(db)
    return [sync_integration(i, as_of=as_of, trigger=trigger) for i in ids]


def sync_due() -> dict[str, Any]:
    """The scheduled job: every enabled integration, skipping those waiting for their retry."""
    now = clock.now()
    with desk_db.session_scope() as db:
        rows = db.execute(
            sa.select(Integration.id, Integration.last_sync_status, Integration.next_retry_at)
            .where(Integration.status == IntegrationStatus.ENABLED)
            .order_by(Integration.id)
        ).all()
    outcomes = []
    waiting = 0
    for integration_id, last_status, next_retry in rows:
        failed = last_status == SyncStatus.FAILED
        if failed and next_retry is not None and next_retry > now:
            waiting += 1
            continue
        outcomes.append(sync_integration(integration_id, trigger="retry" if failed else "schedule"))
    return {
        "integrations": len(outcomes),
        "waiting_retry": waiting,
        "failed": sum(1 for o in outcomes if o.status == SyncStatus.FAILED),
    }


# --- step 3 ----------------------------------------------------------------------------------


def validation_guard(db: Session, ticket: Ticket) -> tuple[str, str] | None:
    """Step 3 (validation) waits for the validation run and for every one of its divergences to
    be assigned to the customer or the integrator. While nothing at all was imported for the
    integration's establishments (no receipt, no retorno) there is no divergence to triage."""
    integration = integration_for_ticket(db, ticket.id)
    if integration is None or integration.validation_run_id is None:
        task = ticket.dev_task
        codes = (
            integration.establishment_codes
            if integration is not None
            else (task.establishment_codes if task else [])
        )
        if not _has_any_record(db, codes):
            return None  # nothing imported for these establishments: no divergence to triage
        failing = integration is not None and integration.last_sync_status == SyncStatus.FAILED
        detail = (
            " A última sincronização falhou e será tentada de novo; veja a tela de validação."
            if failing
            else ""
        )
        return (
            "first_run_pending",
            "A primeira conciliação com o retorno da Boavista ainda não aconteceu: "
            "a validação fica disponível assim que o retorno chegar e for conciliado." + detail,
        )
    pending = triage.untriaged_validation_count(db, integration.id)
    if pending:
        noun = "divergência" if pending == 1 else "divergências"
        return (
            "divergences_not_triaged",
            f"Defina quem deve agir (cliente ou Boavista) em cada divergência da primeira conciliação: "
            f"falta{'m' if pending > 1 else ''} {pending} {noun}.",
        )
    return None


def _has_any_record(db: Session, codes: Iterable[str]) -> bool:
    wanted = [c for c in (records.norm_code(x) for x in codes) if c]
    if not wanted:
        return False
    for model in (StoredReceipt, StoredStatementRow):
        found = db.scalars(sa.select(model.id).where(model.establishment_code.in_(wanted)).limit(1)).first()
        if found is not None:
            return True
    return False


def next_remessa_at(integration: Integration, tz: Any) -> datetime:
    """When the next daily remessa goes out (business time zone)."""
    now_local = clock.now().astimezone(tz)
    at = time.fromisoformat(integration.remessa_time or DEFAULT_REMESSA_TIME)
    today_slot = datetime.combine(now_local.date(), at, tzinfo=tz)
    sent_today = (
        integration.last_remessa_as_of is not None and integration.last_remessa_as_of >= now_local.date()
    )
    if sent_today:
        return today_slot + timedelta(days=1)
    return max(today_slot, now_local)  # due: the next pass sends it


def mail_problems(db: Session | None, ticket: Ticket, template_name: str) -> dict[str, Any]:
    """Mail context provider: the customer/integrator problem mails list the divergences
    assigned to that party (the template keeps its placeholder when there are none)."""
    responsible = {name: who for who, name in triage.MAIL_TEMPLATES.items()}.get(template_name)
    if responsible is None or db is None:
        return {}
    problems = triage.problems_for(db, ticket.id, responsible)
    return {"problems": problems} if problems else {}
