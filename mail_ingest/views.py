"""Web pages for agents: triage and quarantine lists, a message (sanitized), open ticket, dismiss.

Login comes from the web part (Flask-Login); these pages only ask it who is signed in.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from mail_ingest import actions
from onboarding import db
from onboarding.errors import DomainError
from onboarding.models import Role, User
from onboarding.queries import page_args

bp = Blueprint("mail_web", __name__, url_prefix="/mail")

AGENT_ROLES = frozenset({Role.AGENT, Role.ADMIN})


def _agent() -> User:
    """The signed-in agent or admin; 401 when nobody is signed in, 403 for other roles."""
    manager = getattr(current_app, "login_manager", None)
    if manager is None:
        abort(401)
    from flask_login import current_user

    if not current_user.is_authenticated:
        return abort(manager.unauthorized())  # type: ignore[no-any-return]
    user = db.session().get(User, int(current_user.get_id()))
    if user is None or not user.active:
        abort(401)
    if user.role not in AGENT_ROLES:
        abort(403)
    return user


@bp.get("/triage")
def triage() -> ResponseReturnValue:
    _agent()
    page, per_page = page_args(request.args.get("page", 1), request.args.get("per_page", 25))
    result = actions.list_page(db.session(), actions.triage_query(), page, per_page)
    return render_template("mail_ingest/list.html", title="Triagem de e-mails", page=result, triage=True)


@bp.get("/quarantine")
def quarantine() -> ResponseReturnValue:
    _agent()
    page, per_page = page_args(request.args.get("page", 1), request.args.get("per_page", 25))
    result = actions.list_page(db.session(), actions.quarantine_query(), page, per_page)
    return render_template("mail_ingest/list.html", title="Quarentena de e-mails", page=result, triage=False)


@bp.get("/messages/<int:inbound_id>")
def message(inbound_id: int) -> ResponseReturnValue:
    _agent()
    session = db.session()
    try:
        found = actions.get_message(session, inbound_id)
    except DomainError:
        abort(404)
    parsed = None if found.headers_only else actions.parsed_copy(session, found)
    fields = actions.suggested_fields(session, found)
    return render_template("mail_ingest/message.html", message=found, parsed=parsed, fields=fields)


@bp.post("/messages/<int:inbound_id>/dismiss")
def dismiss(inbound_id: int) -> Response:
    user = _agent()
    session = db.session()
    try:
        actions.dismiss(session, user, inbound_id)
        session.commit()
        flash("Mensagem descartada da triagem.", "success")
    except DomainError as error:
        session.rollback()
        flash(error.message, "error")
    return redirect(url_for("mail_web.triage"))


@bp.post("/messages/<int:inbound_id>/ticket")
def open_ticket(inbound_id: int) -> ResponseReturnValue:
    user = _agent()
    session = db.session()
    form = request.form
    codes = [c.strip() for c in form.get("establishment_codes", "").replace(";", ",").split(",") if c.strip()]
    try:
        ticket = actions.open_ticket_from_mail(
            session,
            user,
            inbound_id,
            customer_name=form.get("customer_name", ""),
            cnpj=form.get("cnpj") or None,
            establishment_codes=codes,
            contact_email=form.get("contact_email", ""),
            contract_done=form.get("contract_done") == "1",
        )
        session.commit()
    except DomainError as error:
        session.rollback()
        flash(error.message, "error")
        return redirect(url_for("mail_web.message", inbound_id=inbound_id))
    flash(f"Chamado {ticket.number} aberto a partir do e-mail.", "success")
    return redirect(url_for("mail_web.triage"))
