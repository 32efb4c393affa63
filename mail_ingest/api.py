"""JSON API of the mail package under /api/v1 (bearer tokens, `{"error", "message"}` errors).

Kept small and self-contained; the lead moves it onto the shared API helpers at merge.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from mail_ingest import actions
from onboarding import auth, db
from onboarding.errors import DomainError
from onboarding.models import Role, User
from onboarding.queries import page_args

bp = Blueprint("mail_api", __name__, url_prefix="/api/v1")

AGENT_ROLES = frozenset({Role.AGENT, Role.ADMIN})


def error(code: str, message: str, status: int) -> ResponseReturnValue:
    return jsonify({"error": code, "message": message}), status


def authenticated(roles: frozenset[Role] | None = None) -> Callable[..., Any]:
    def decorate(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            user = None
            if scheme.lower() == "bearer" and token.strip():
                user = auth.user_for_token(db.session(), token.strip())
            if user is None:
                return error(
                    "unauthorized", "Informe um token de acesso válido (Authorization: Bearer).", 401
                )
            if roles is not None and user.role not in roles:
                return error("forbidden_role", "Seu perfil não permite acessar este recurso.", 403)
            g.api_user = user
            try:
                return view(*args, **kwargs)
            except DomainError as failure:
                db.session().rollback()
                return error(failure.code, failure.message, failure.http_status)

        return wrapper

    return decorate


def _paged(query: Any) -> ResponseReturnValue:
    page, per_page = page_args(request.args.get("page", 1), request.args.get("per_page", 25))
    result = actions.list_page(db.session(), query, page, per_page)
    return jsonify(
        {
            "items": [actions.message_summary(m) for m in result.items],
            "page": result.page,
            "per_page": result.per_page,
            "total": result.total,
        }
    )


@bp.get("/mail/triage")
@authenticated(AGENT_ROLES)
def triage() -> ResponseReturnValue:
    return _paged(actions.triage_query())


@bp.get("/mail/quarantine")
@authenticated(AGENT_ROLES)
def quarantine() -> ResponseReturnValue:
    return _paged(actions.quarantine_query())


@bp.post("/mail/triage/<int:inbound_id>/dismiss")
@authenticated(AGENT_ROLES)
def dismiss(inbound_id: int) -> ResponseReturnValue:
    session = db.session()
    message = actions.dismiss(session, _user(), inbound_id)
    session.commit()
    return jsonify(actions.message_summary(message))


@bp.post("/mail/triage/<int:inbound_id>/ticket")
@authenticated(AGENT_ROLES)
def open_ticket(inbound_id: int) -> ResponseReturnValue:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error("invalid_json", "Envie um objeto JSON.", 400)
    codes = body.get("establishment_codes") or []
    if not isinstance(codes, list):
        return error("invalid_establishment_codes", "establishment_codes deve ser uma lista.", 400)
    session = db.session()
    ticket = actions.open_ticket_from_mail(
        session,
        _user(),
        inbound_id,
        customer_name=str(body.get("customer_name") or ""),
        cnpj=str(body.get("cnpj") or "") or None,
        establishment_codes=[str(c) for c in codes],
        contact_email=str(body.get("contact_email") or ""),
        contract_done=bool(body.get("contract_done", False)),
    )
    session.commit()
    return jsonify({"id": ticket.id, "number": ticket.number}), 201


@bp.get("/tickets/<int:ticket_id>/messages")
@authenticated()
def ticket_messages(ticket_id: int) -> ResponseReturnValue:
    items = actions.ticket_messages(db.session(), ticket_id)
    page, per_page = page_args(request.args.get("page", 1), request.args.get("per_page", 100))
    start = (page - 1) * per_page
    return jsonify(
        {"items": items[start : start + per_page], "page": page, "per_page": per_page, "total": len(items)}
    )


def _user() -> User:
    return g.api_user
