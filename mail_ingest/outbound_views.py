"""Web pages of the outbox: preview, edit and send a template mail; the reply box; requeue."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from mail_ingest import outbound, ticket_mail
from mail_ingest.outbound_models import OutboundMail
from mail_ingest.templates import STEP_TEMPLATES, TEMPLATES, get_template
from onboarding import db
from onboarding.errors import DomainError
from onboarding.models import Ticket, User
from onboarding.services import AGENTS, get_ticket, require_role

bp = Blueprint("mail_outbound", __name__)

STATUS_LABELS = {
    "queued": "Na fila",
    "sending": "Enviando",
    "sent": "Enviado",
    "failed": "Falhou",
    "uncertain": "Envio incerto",
    "suppressed": "Bloqueado",
}


def _actor() -> User:
    manager = getattr(current_app, "login_manager", None)
    if manager is None:
        abort(401)
    from flask_login import current_user

    if not current_user.is_authenticated:
        abort(manager.unauthorized())
    user = db.session().get(User, getattr(current_user, "id", None))
    if user is None or not user.active:
        abort(401)
    require_role(user, AGENTS, "enviar e-mails do chamado")
    return user


def format_when(value: datetime | None) -> str:
    """dd/mm/aaaa HH:MM in the business time zone."""
    if value is None:
        return ""
    zone = ZoneInfo(current_app.config.get("TIMEZONE") or "America/Sao_Paulo")
    return value.astimezone(zone).strftime("%d/%m/%Y %H:%M")


@bp.app_context_processor
def _mail_helpers() -> dict[str, Any]:
    return {"mail_status_labels": STATUS_LABELS, "mail_when": format_when}


def _render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, **context), status


def _ticket_page(ticket: Ticket, status: int = 200, **context: Any) -> tuple[str, int]:
    session = db.session()
    context.setdefault("reply", {})
    return _render(
        "mail/ticket_mail.html",
        status,
        ticket=ticket,
        timeline=outbound.outbound_timeline(session, ticket.id),
        templates=TEMPLATES,
        step_template=STEP_TEMPLATES.get(ticket.current_step or ""),
        **context,
    )


@bp.get("/tickets/<int:ticket_id>/mail")
def ticket_mail_page(ticket_id: int) -> Any:
    try:
        _actor()
        ticket = get_ticket(db.session(), ticket_id)
    except DomainError as error:
        abort(error.http_status, error.message)
    return _ticket_page(ticket)


@bp.route("/tickets/<int:ticket_id>/mail/<template>", methods=["GET", "POST"])
def compose(ticket_id: int, template: str) -> Any:
    session = db.session()
    try:
        actor = _actor()
        get_template(template)
        draft = ticket_mail.preview(ticket_id, template, session=session, actor=actor)
    except DomainError as error:
        abort(error.http_status, error.message)
    ticket = get_ticket(session, ticket_id)
    form = {
        "to": ", ".join(draft.to),
        "cc": "",
        "subject": draft.subject,
        "text": draft.text,
    }
    if request.method == "GET":
        return _render("mail/compose.html", ticket=ticket, draft=draft, form=form, spec=TEMPLATES[template])
    form = {key: request.form.get(key, "") for key in form}
    try:
        ticket_mail.send_from_ticket(
            session,
            actor,
            ticket_id,
            template,
            to=form["to"],
            cc=form["cc"],
            subject=form["subject"],
            text=form["text"],
        )
        session.commit()
    except DomainError as error:
        session.rollback()
        return _render(
            "mail/compose.html",
            error.http_status,
            ticket=get_ticket(session, ticket_id),
            draft=draft,
            form=form,
            spec=TEMPLATES[template],
            error=error.message,
        )
    flash("E-mail colocado na caixa de saída.", "success")
    return redirect(url_for("mail_outbound.ticket_mail_page", ticket_id=ticket_id))


@bp.post("/tickets/<int:ticket_id>/mail/reply")
def reply(ticket_id: int) -> Any:
    session = db.session()
    try:
        actor = _actor()
    except DomainError as error:
        abort(error.http_status, error.message)
    form = {key: request.form.get(key, "") for key in ("to", "cc", "subject", "text", "in_reply_to")}
    try:
        ticket_mail.send_reply(
            session,
            actor,
            ticket_id,
            to=form["to"],
            cc=form["cc"],
            subject=form["subject"],
            text=form["text"],
            in_reply_to=form["in_reply_to"] or None,
        )
        session.commit()
    except DomainError as error:
        session.rollback()
        if error.http_status == 404:
            abort(404, error.message)
        return _ticket_page(
            get_ticket(session, ticket_id), error.http_status, reply=form, error=error.message
        )
    flash("Resposta colocada na caixa de saída.", "success")
    return redirect(url_for("mail_outbound.ticket_mail_page", ticket_id=ticket_id))


@bp.post("/mail/outbound/<int:mail_id>/requeue")
def requeue(mail_id: int) -> Response:
    session = db.session()
    try:
        actor = _actor()
    except DomainError as error:
        abort(error.http_status, error.message)
    mail = session.get(OutboundMail, mail_id)
    if mail is None:
        abort(404)
    ticket_id = mail.ticket_id
    try:
        outbound.requeue(session, actor, mail_id)
        session.commit()
        flash("E-mail recolocado na fila de envio.", "success")
    except DomainError as error:
        session.rollback()
        flash(error.message, "error")
    if ticket_id is None:
        return redirect(url_for("web.queue"))
    return redirect(url_for("mail_outbound.ticket_mail_page", ticket_id=ticket_id))
