"""Reconciliation endpoints of the JSON API (`/api/v1`, SPEC section 5).

`POST /sales` (developer, admin), `PATCH /sales/{sale_id}` (agent, admin),
`GET /reconciliation/summary` and `GET /reconciliation/items` (every role). Bearer tokens,
errors as `{"error", "message"}`; a refused call changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, g, jsonify, request

from onboarding import auth, db
from onboarding.errors import DomainError, InvalidInput
from onboarding.models import Role, User
from reconciliation import corrections, engine, importers
from reconciliation.models import Result

bp = Blueprint("recon_api", __name__, url_prefix="/api/v1")

MAX_SALES_PER_REQUEST = 10_000
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500


def _error(code: str, message: str, status: int) -> tuple[Response, int]:
    return jsonify({"error": code, "message": message}), status


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError) -> tuple[Response, int]:
    db.session().rollback()
    return _error(error.code, error.message, error.http_status)


def roles(*allowed: Role) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Bearer authentication, then the role check (an empty list allows every role)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            user = auth.user_for_token(db.session(), token.strip()) if scheme.lower() == "bearer" else None
            if user is None:
                return _error("unauthorized", "Token de acesso ausente ou inválido.", 401)
            if allowed and user.role not in allowed:
                return _error("forbidden", "Seu perfil não tem permissão para esta ação.", 403)
            g.api_user = user
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidInput("invalid_json", "O corpo da requisição deve ser JSON.")
    return body


def _user() -> User:
    return g.api_user


@bp.post("/sales")
@roles(Role.DEVELOPER, Role.ADMIN)
def post_sales() -> tuple[Response, int]:
    body = _json_body()
    items = body.get("sales") if isinstance(body, dict) else body
    if not isinstance(items, list) or not items:
        raise InvalidInput(
            "invalid_sales", 'Envie uma lista não vazia de recebimentos (ou {"sales": [...]}).'
        )
    if len(items) > MAX_SALES_PER_REQUEST:
        raise InvalidInput(
            "too_many_sales", f"No máximo {MAX_SALES_PER_REQUEST} recebimentos por requisição."
        )
    session = db.session()
    report = importers.import_sales_items(session, items, tz=engine.settings().tz, user=_user())
    errors = [
        {
            "index": e.line,
            "sale_id": items[e.line].get("sale_id") if isinstance(items[e.line], dict) else None,
            "message": e.reason,
        }
        for e in report.errors
    ]
    if len(errors) == len(items):
        session.rollback()
        return jsonify(
            {"error": "invalid_sales", "message": "Nenhum recebimento válido no lote.", "errors": errors}
        ), 400
    session.commit()
    return jsonify(
        {
            "batch_id": report.batch_id,
            "received": len(items),
            "inserted": report.inserted,
            "ignored": report.ignored,
            "errors": errors,
        }
    ), 200


@bp.patch("/sales/<path:sale_id>")
@roles(Role.AGENT, Role.ADMIN)
def patch_sale(sale_id: str) -> tuple[Response, int]:
    body = _json_body()
    if not isinstance(body, dict):
        raise InvalidInput("invalid_correction", "Envie um objeto com os campos a corrigir.")
    session = db.session()
    tz = engine.settings().tz
    stored, correction = corrections.correct_sale(session, sale_id, body, actor=_user(), source="api", tz=tz)
    data = corrections.sale_as_dict(stored, tz)
    data["correction"] = {
        "id": correction.id,
        "corrected_on": correction.corrected_on.isoformat(),
        "before": correction.before,
        "after": correction.after,
    }
    session.commit()
    return jsonify(data), 200


def _query_date(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("invalid_date", f"Parâmetro {name} inválido: {raw!r} (use AAAA-MM-DD).") from None


def _query_int(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise InvalidInput(
            "invalid_paging", f"Parâmetro {name} inválido: use um número de {minimum} a {maximum}."
        )
    return int(raw)


@bp.get("/reconciliation/summary")
@roles()
def summary() -> Response:
    code = engine.normalize_code(request.args.get("establishment") or None)
    as_of = engine.ensure_results(as_of=_query_date("as_of"), establishment=code, trigger="api")
    counts = engine.count_results(db.session(), code)
    return jsonify({"as_of": as_of.isoformat(), "establishment": code, **counts.as_dict()})


@bp.get("/reconciliation/items")
@roles()
def items() -> Response:
    code = engine.normalize_code(request.args.get("establishment") or None)
    status = (request.args.get("status") or "").strip().lower() or None
    if status is not None and status not in engine.STATUSES:
        raise InvalidInput(
            "invalid_status", f"Status inválido: {status!r}. Use um de: {', '.join(engine.STATUSES)}."
        )
    page = _query_int("page", 1, 1, 10**9)
    per_page = _query_int("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    as_of = engine.ensure_results(as_of=_query_date("as_of"), establishment=code, trigger="api")
    table = Result.__table__
    conditions = []
    if code is not None:
        conditions.append(table.c.establishment_code == code)
    if status is not None:
        conditions.append(table.c.status == status)
    session = db.session()
    total = session.scalar(sa.select(sa.func.count()).select_from(table).where(*conditions)) or 0
    rows = session.execute(
        sa.select(table)
        .where(*conditions)
        .order_by(table.c.kind, table.c.record_key)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return jsonify(
        {
            "items": [
                {
                    "kind": row.kind,
                    "id": row.record_key,
                    "status": row.status,
                    "divergences": row.divergences.split("|") if row.divergences else [],
                    "counterpart_ids": row.counterpart_ids.split("|") if row.counterpart_ids else [],
                    "rule": row.rule,
                    "establishment_code": row.establishment_code,
                }
                for row in rows
            ],
            "page": page,
            "per_page": per_page,
            "total": total,
            "as_of": as_of.isoformat(),
        }
    )
