"""Screens of the integration: validation (step 3), corrections, the developer's configuration.

- `/reconciliation/tickets/<id>`: per establishment and day what reconciled and what did not, the
  chart, the divergences (filter by kind) and, for each, who must act (agents and admins).
- `/reconciliation/tickets/<id>/receipts`: the "conciliação / recebimento de cartões" screen: the
  receipts with their status; each can be corrected (agents and admins), which is audited and
  queued for the next remessa.
- `/reconciliation/tickets/<id>/integration`: establishment codes and transport (developers, admins).

Every page needs a signed-in user; every POST carries the CSRF token (checked app-wide) and its
role is checked on the server by the service it calls.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, abort, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy.orm import Session

from onboarding import db, services
from onboarding.errors import InvalidInput, NotFound
from onboarding.jobs import enqueue_after_commit
from onboarding.models import StepKey, StepStatus, Ticket, User
from onboarding.queries import page_args
from onboarding.views import TicketPanel, register_ticket_panel
from onboarding.web_common import AGENT_ROLES, DEVELOPER_ROLES, actor, run_action
from onboarding.web_forms import split_codes
from reconciliation import chart, corrections, csvformat, engine, lifecycle, records, screens, triage
from reconciliation.integration_models import (
    DivergenceTriage,
    Integration,
    IntegrationStatus,
    SyncPass,
    TransportKind,
)
from reconciliation.models import Establishment, StoredReceipt

bp = Blueprint(
    "recon",
    __name__,
    url_prefix="/reconciliation",
    static_folder="static",
    static_url_path="/static",
)

SCOPES = {
    "open": "Em aberto",
    "untriaged": "Sem responsável",
    "validation": "Da primeira conciliação",
    "all": "Todas",
}
RECEIPT_FILTERS = {
    "": "Todas",
    "open": "Com problema",
    "divergent": "Divergentes",
    "not_found": "Sem correspondente",
    "pending": "Pendentes",
    "matched": "Conciliadas",
    "manual": "Manuais",
    "queued": "Na fila de reenvio",
    "corrected": "Corrigidas",
}
SYNC_STATUS_LABELS = {
    "running": "Em andamento",
    "finished": "Concluída",
    "partial": "Parcial",
    "failed": "Falhou",
}
TRIGGER_LABELS = {
    "first_run": "Primeira execução",
    "schedule": "Agendada",
    "retry": "Nova tentativa",
    "cli": "Linha de comando",
    "manual": "Pedido na tela",
    "correction": "Após correção",
}
INTEGRATION_STATUS_LABELS = {
    IntegrationStatus.CONFIGURED: "Configurada",
    IntegrationStatus.ENABLED: "Em produção",
    IntegrationStatus.DISABLED: "Desativada",
}
CORRECTABLE = ("authorization_code", "nsu", "installments", "brand", "payment_type", "amount")
ORIGIN_LABELS = {
    "sale": "venda",
    "invoice_payment": "pagamento de fatura",
    "other_receipt": "outro recebimento",
}
PAYMENT_TYPES = [(p.value, triage.PAYMENT_LABELS[p.value]) for p in records.PaymentType]


@bp.before_request
def _require_login() -> ResponseReturnValue | None:
    if current_user.is_authenticated:
        return None
    from onboarding.web_auth import login_manager

    return login_manager.unauthorized()  # type: ignore[no-any-return]


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {
        "recon_status_labels": screens.STATUS_LABELS,
        "recon_kind_labels": triage.KIND_LABELS,
        "recon_responsible_labels": triage.RESPONSIBLE_LABELS,
    }


def _ticket(session: Session, ticket_id: int) -> Ticket:
    try:
        return services.get_ticket(session, ticket_id)
    except NotFound:
        abort(404)


def _current_as_of(session: Session, codes: list[str]) -> Any:
    if not codes:
        return None
    return session.scalar(
        sa.select(sa.func.max(Establishment.result_as_of)).where(Establishment.code.in_(codes))
    )


# --- validation (step 3) ---------------------------------------------------------------------


def validation_page(ticket_id: int) -> str:
    session = db.session()
    user = actor()
    ticket = _ticket(session, ticket_id)
    integration = lifecycle.integration_for_ticket(session, ticket_id)
    conf = engine.settings()
    context: dict[str, Any] = {
        "ticket": ticket,
        "integration": integration,
        "is_agent": user.role in AGENT_ROLES,
        "is_developer": user.role in DEVELOPER_ROLES,
        "scopes": SCOPES,
        "sync_status_labels": SYNC_STATUS_LABELS,
        "trigger_labels": TRIGGER_LABELS,
        "integration_status_labels": INTEGRATION_STATUS_LABELS,
        "transport_labels": lifecycle.TRANSPORT_LABELS,
        "mail_templates": triage.MAIL_TEMPLATES,
        "lookback_days": conf.lookback_days,
    }
    step = ticket.step(StepKey.VALIDATION)
    context["step"] = step
    context["step_done"] = step.status == StepStatus.DONE
    blocked = (
        services.step_blocker(session, ticket, StepKey.VALIDATION) if step.status != StepStatus.DONE else None
    )
    context["step_blocker"] = blocked[1] if blocked else None
    if integration is None:
        return render_template("reconciliation/validation.html", **context)
    codes = screens.codes_of(integration)
    as_of = _current_as_of(session, codes)
    span = screens.day_range(integration, as_of)
    stats = screens.day_stats(session, codes, *span) if span else []
    days = screens.chart_days(stats, *span) if span else []
    kind = request.args.get("kind") or None
    if kind not in triage.KIND_LABELS:
        kind = None
    scope = request.args.get("scope", "open")
    if scope not in SCOPES:
        scope = "open"
    page, per_page = page_args(request.args.get("page"), request.args.get("per_page") or 50)
    triage_rows = screens.triage_page(
        session, integration.id, kind=kind, scope=scope, page=page, per_page=per_page
    )
    passes = session.scalars(
        sa.select(SyncPass)
        .where(SyncPass.integration_id == integration.id)
        .order_by(SyncPass.id.desc())
        .limit(8)
    ).all()
    context.update(
        codes=codes,
        as_of=as_of,
        stats=stats,
        days=days,
        chart_svg=chart.render(days) if days else Markup(""),
        kind=kind,
        scope=scope,
        page=triage_rows,
        details=triage.details(session, triage_rows.items),
        counts=screens.triage_counts(session, integration.id),
        kind_counts=screens.kind_counts(session, integration.id),
        passes=passes,
        next_remessa_at=lifecycle.next_remessa_at(integration, conf.tz),
    )
    return render_template("reconciliation/validation.html", **context)


@bp.get("/tickets/<int:ticket_id>")
def validation(ticket_id: int) -> ResponseReturnValue:
    return validation_page(ticket_id)


@bp.post("/divergences/<int:triage_id>/triage")
def triage_divergence(triage_id: int) -> ResponseReturnValue:
    session = db.session()
    row = session.get(DivergenceTriage, triage_id)
    if row is None:
        abort(404)
    ticket_id = row.ticket_id
    responsible = request.form.get("responsible") or ""
    note = request.form.get("note") or ""
    back_args = {k: v for k, v in request.args.items() if k in ("kind", "scope", "page")}

    def mark(db_session: Session, user: User) -> DivergenceTriage:
        return triage.set_responsible(db_session, user, triage_id, responsible, note)

    return run_action(
        mark,
        success=lambda r: f"Divergência atribuída: {triage.RESPONSIBLE_LABELS[r.responsible]}.",
        redirect_to=url_for("recon.validation", ticket_id=ticket_id, **back_args) + f"#div-{triage_id}",
        back=lambda: validation_page(ticket_id),
    )


@bp.post("/tickets/<int:ticket_id>/sync")
def sync_now(ticket_id: int) -> ResponseReturnValue:
    session = db.session()
    integration = lifecycle.integration_for_ticket(session, ticket_id)
    if integration is None:
        abort(404)
    integration_id = integration.id
    return run_action(
        lambda s, user: lifecycle.request_sync(s, user, integration_id),
        success="Sincronização solicitada.",
        redirect_to=url_for("recon.validation", ticket_id=ticket_id),
        back=lambda: validation_page(ticket_id),
    )


# --- corrections -----------------------------------------------------------------------------


def _integration_or_404(session: Session, ticket_id: int) -> Integration:
    integration = lifecycle.integration_for_ticket(session, ticket_id)
    if integration is None:
        abort(404)
    return integration


@bp.get("/tickets/<int:ticket_id>/receipts")
def receipts(ticket_id: int) -> ResponseReturnValue:
    session = db.session()
    ticket = _ticket(session, ticket_id)
    integration = _integration_or_404(session, ticket_id)
    conf = engine.settings()
    codes = screens.codes_of(integration)
    status = request.args.get("status") or ""
    if status not in RECEIPT_FILTERS:
        status = ""
    page, per_page = page_args(request.args.get("page"), request.args.get("per_page") or 50)
    result = screens.receipts_page(
        session,
        codes,
        page=page,
        per_page=per_page,
        status=status or None,
        establishment=request.args.get("establishment") or None,
        q=request.args.get("q") or None,
        start=integration.start_date,  # older receipts predate the integration: never sent
    )
    next_remessa = lifecycle.next_remessa_at(integration, conf.tz)
    states = {
        row.receipt.sale_id: screens.correction_state(
            session, integration, row.receipt, row.status, conf.lookback_days, next_remessa
        )
        for row in result.items
    }
    return render_template(
        "reconciliation/receipts.html",
        ticket=ticket,
        integration=integration,
        codes=codes,
        page=result,
        states=states,
        filters=RECEIPT_FILTERS,
        status=status,
        q=request.args.get("q") or "",
        establishment=request.args.get("establishment") or "",
        payment_labels=triage.PAYMENT_LABELS,
        is_agent=actor().role in AGENT_ROLES,
    )


def _receipt(session: Session, integration: Integration, sale_id: str) -> StoredReceipt:
    stored = session.scalars(sa.select(StoredReceipt).where(StoredReceipt.sale_id == sale_id)).first()
    if stored is None or stored.establishment_code not in screens.codes_of(integration):
        abort(404)
    return stored


def receipt_page(ticket_id: int, sale_id: str, form: dict[str, str] | None = None) -> str:
    session = db.session()
    ticket = _ticket(session, ticket_id)
    integration = _integration_or_404(session, ticket_id)
    stored = _receipt(session, integration, sale_id)
    conf = engine.settings()
    status, divergences = screens.result_of(session, sale_id)
    values = form or _form_values(stored)
    return render_template(
        "reconciliation/receipt.html",
        ticket=ticket,
        integration=integration,
        receipt=stored,
        status=status,
        divergences=divergences,
        form=values,
        counterparts=screens.counterpart_rows(session, sale_id),
        history=screens.corrections_of(session, sale_id),
        user_names=screens.user_names(session),
        origin_labels=ORIGIN_LABELS,
        state=screens.correction_state(
            session,
            integration,
            stored,
            status,
            conf.lookback_days,
            lifecycle.next_remessa_at(integration, conf.tz),
        ),
        payment_types=PAYMENT_TYPES,
        payment_labels=triage.PAYMENT_LABELS,
        is_agent=actor().role in AGENT_ROLES,
        lookback_days=conf.lookback_days,
        one_day=timedelta(days=1),
    )


def _form_values(stored: StoredReceipt) -> dict[str, str]:
    return {
        "authorization_code": stored.authorization_code or "",
        "nsu": stored.nsu or "",
        "installments": str(stored.installments),
        "brand": stored.brand,
        "payment_type": stored.payment_type,
        "amount": csvformat.format_amount(stored.amount_cents, csvformat.SEMICOLON),
    }


@bp.get("/tickets/<int:ticket_id>/receipts/<path:sale_id>")
def receipt(ticket_id: int, sale_id: str) -> ResponseReturnValue:
    return receipt_page(ticket_id, sale_id)


@bp.post("/tickets/<int:ticket_id>/receipts/<path:sale_id>")
def correct_receipt(ticket_id: int, sale_id: str) -> ResponseReturnValue:
    session = db.session()
    integration = _integration_or_404(session, ticket_id)
    stored = _receipt(session, integration, sale_id)
    integration_id, integration_status = integration.id, integration.status
    submitted = {name: (request.form.get(name) or "").strip() for name in CORRECTABLE}
    current = _form_values(stored)
    changes = {name: value for name, value in submitted.items() if value != current[name]}
    tz = engine.settings().tz

    def correct(db_session: Session, user: User) -> Any:
        services.require_role(user, services.AGENTS, "corrigir recebimentos")
        if not changes:
            raise InvalidInput(
                "nothing_changed", "Nada foi alterado: edite ao menos um campo antes de salvar."
            )
        cleaned = dict(changes)
        if cleaned.get("amount"):
            cleaned["amount"] = cleaned["amount"].replace("R$", "").strip()
        result = corrections.correct_sale(db_session, sale_id, cleaned, actor=user, source="web", tz=tz)
        if integration_status == IntegrationStatus.ENABLED:
            enqueue_after_commit(db_session, lifecycle.rerun_job, integration_id)
        return result

    def success(result: Any) -> str:
        _stored, correction = result
        return (
            f"Correção da venda {sale_id} registrada em {correction.corrected_on:%d/%m/%Y}; "
            "ela vai na próxima remessa."
        )

    return run_action(
        correct,
        success=success,
        redirect_to=url_for("recon.receipt", ticket_id=ticket_id, sale_id=sale_id),
        back=lambda: receipt_page(ticket_id, sale_id, submitted),
    )


# --- the developer's configuration -----------------------------------------------------------


SFTP_FIELDS = (
    "host",
    "port",
    "username",
    "outbox_dir",
    "inbox_dir",
    "host_key",
    "known_hosts_file",
    "key_file",
    "password_env",
)


def integration_page(ticket_id: int, form: dict[str, str] | None = None) -> str:
    session = db.session()
    ticket = _ticket(session, ticket_id)
    integration = lifecycle.integration_for_ticket(session, ticket_id)
    task = ticket.dev_task
    if form is None:
        settings = dict(integration.settings) if integration is not None else {}
        form = {name: str(settings.get(name) or "") for name in SFTP_FIELDS}
        form["transport"] = integration.transport if integration is not None else TransportKind.FOLDER
        form["remessa_time"] = (
            integration.remessa_time if integration is not None else lifecycle.DEFAULT_REMESSA_TIME
        )
        codes = (
            integration.establishment_codes
            if integration is not None
            else (task.establishment_codes if task else [])
        )
        form["establishment_codes"] = ", ".join(codes or ticket.customer.establishment_codes)
    return render_template(
        "reconciliation/integration.html",
        ticket=ticket,
        task=task,
        integration=integration,
        form=form,
        exchange_dir=lifecycle.exchange_dir(),
        is_developer=actor().role in DEVELOPER_ROLES,
        transport_labels=lifecycle.TRANSPORT_LABELS,
    )


@bp.get("/tickets/<int:ticket_id>/integration")
def integration_settings(ticket_id: int) -> ResponseReturnValue:
    return integration_page(ticket_id)


@bp.post("/tickets/<int:ticket_id>/integration")
def save_integration(ticket_id: int) -> ResponseReturnValue:
    form = {
        name: (request.form.get(name) or "").strip()
        for name in (*SFTP_FIELDS, "transport", "remessa_time", "establishment_codes")
    }

    def save(db_session: Session, user: User) -> Integration:
        services.require_role(user, services.DEVELOPERS, "configurar a integração")
        codes = split_codes(form["establishment_codes"])
        settings = (
            {name: form[name] for name in SFTP_FIELDS} if form["transport"] == TransportKind.SFTP else {}
        )
        return lifecycle.configure_integration(
            db_session,
            user,
            ticket_id,
            establishment_codes=codes,
            transport=form["transport"],
            settings=settings,
            remessa_time=form["remessa_time"],
        )

    return run_action(
        save,
        success="Configuração da integração salva.",
        redirect_to=url_for("recon.integration_settings", ticket_id=ticket_id),
        back=lambda: integration_page(ticket_id, form),
    )


# --- the panel on the ticket page ------------------------------------------------------------


def ticket_panel(session: Session, ticket: Ticket, user: User) -> TicketPanel | None:
    if ticket.dev_task is None:
        return None
    integration = lifecycle.integration_for_ticket(session, ticket.id)
    counts = screens.triage_counts(session, integration.id) if integration is not None else None
    body = render_template(
        "reconciliation/_panel.html",
        ticket=ticket,
        integration=integration,
        counts=counts,
        is_agent=user.role in AGENT_ROLES,
        is_developer=user.role in DEVELOPER_ROLES,
        integration_status_labels=INTEGRATION_STATUS_LABELS,
        sync_status_labels=SYNC_STATUS_LABELS,
    )
    return TicketPanel("Conciliação", Markup(body), order=10)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_ticket_panel(ticket_panel)
