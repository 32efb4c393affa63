"""The `/api/v1` JSON API shell: token auth, one transaction per request, errors, OpenAPI.

Other packages add endpoints with the same auth, error handling and OpenAPI entry by decorating a
function with `endpoint`, at import time or in their `init_app` (which `create_app` runs before
`onboarding.api.init_app` builds each app's blueprint from the registry):

    from pydantic import BaseModel
    from onboarding.api import ApiCall, ApiError, endpoint
    from onboarding.services import AGENTS

    @endpoint("GET", "/mail/triage", roles=AGENTS, query=TriageQuery, response=TriagePage,
              summary="Mensagens que não abriram chamado")
    def mail_triage(call: ApiCall) -> TriagePage:
        ...  # call.user, call.db (the request's session), call.query (a validated TriageQuery)

    @endpoint("PATCH", "/sales/<sale_id>", roles=AGENTS, body=SaleCorrection, response=SaleOut,
              summary="Corrige uma venda")
    def correct_sale(call: ApiCall, sale_id: str) -> SaleOut:
        ...  # call.body is a validated SaleCorrection

- `rule` uses Flask converters (`<int:ticket_id>`); the OpenAPI path becomes `{ticket_id}`. The
  function's name is the Flask endpoint (`api_v1.<name>`) and the operationId: keep it unique.
- `roles=None` lets every authenticated user in; otherwise the user's role must be in `roles`
  (else 403 `forbidden_role`). Services check roles again: this is the outer fence.
- `body`/`query` are pydantic models; bodies should be strict with `extra="forbid"`
  (see `onboarding.api_schemas.RequestModel`), query strings lax (`QueryModel`). A bad one is a
  400 (`invalid_json` / `invalid_input`, with a pt-BR message naming the fields).
- `response` is the pydantic model the function returns (checked); it is serialized with
  `model_dump(mode="json")` and documented as the success response with `status` (default 200).
  Paged lists use `api_schemas.PageOut[Item]` and `api_schemas.PageQuery`.
- The function runs inside the request's transaction: committed when it returns, rolled back when
  anything is raised. Raise `ApiError(status, code, message)` or any
  `onboarding.errors.DomainError`; both become `{"error": code, "message": message}`.
- `current_api_user()` and `json_body(Model)` serve code that is not handed an `ApiCall`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.json_schema import models_json_schema
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, InternalServerError

from onboarding import auth
from onboarding import db as database
from onboarding.db import utcnow
from onboarding.errors import DomainError
from onboarding.models import ApiToken, Role, User

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
BLUEPRINT = "api_v1"
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
M = TypeVar("M", bound=BaseModel)


# --- errors ----------------------------------------------------------------------------------


class ApiError(Exception):
    """`extra` adds keys to the error JSON (e.g. per-item errors of a refused batch)."""

    def __init__(self, status: int, code: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}


class ItemErrorOut(BaseModel):
    """One refused item of a batch: its position in the batch, its id when it has one, why."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)
    index: int
    sale_id: Any = None
    message: str


class ErrorOut(BaseModel):
    """Every refused call answers this, with 400, 401, 403, 404 or 409; a refused batch also lists
    each refused item."""

    model_config = ConfigDict(extra="forbid")
    error: str
    message: str
    errors: list[ItemErrorOut] | None = None


def error_response(status: int, code: str, message: str, extra: dict[str, Any] | None = None) -> Response:
    response = jsonify({**(extra or {}), "error": code, "message": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


_FIELD_MESSAGES: dict[str, str] = {
    "missing": "campo obrigatório",
    "extra_forbidden": "campo não permitido",
    "string_type": "deve ser um texto",
    "list_type": "deve ser uma lista",
    "int_type": "deve ser um número inteiro",
    "int_parsing": "deve ser um número inteiro",
    "int_from_float": "deve ser um número inteiro",
    "bool_type": "deve ser verdadeiro ou falso",
    "bool_parsing": "deve ser verdadeiro ou falso",
    "model_type": "deve ser um objeto JSON",
    "model_attributes_type": "deve ser um objeto JSON",
    "dict_type": "deve ser um objeto JSON",
    "string_pattern_mismatch": "formato inválido",
}


def _describe(error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "greater_than_equal":
        text = f"deve ser no mínimo {ctx['ge']}"
    elif kind == "less_than_equal":
        text = f"deve ser no máximo {ctx['le']}"
    elif kind == "string_too_short":
        text = "não pode ficar vazio" if ctx.get("min_length") == 1 else "é curto demais"
    elif kind == "string_too_long":
        text = f"deve ter no máximo {ctx['max_length']} caracteres"
    elif kind == "too_long":
        text = f"aceita no máximo {ctx['max_length']} itens"
    elif kind == "enum":
        text = f"valor inválido; use um de: {str(ctx.get('expected', '')).replace(' or ', ', ')}"
    else:
        text = _FIELD_MESSAGES.get(kind, "valor inválido")
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {text}" if where else text


def validation_error(error: ValidationError, what: str) -> ApiError:
    errors = error.errors(include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return ApiError(400, "invalid_json", "O corpo da requisição não é um JSON válido.")
    details = "; ".join(_describe(e) for e in errors)
    return ApiError(400, "invalid_input", f"{what} inválidos: {details}.")


# --- request helpers -------------------------------------------------------------------------


def json_body(model: type[M]) -> M:
    """The request's JSON body validated as `model` (an empty body counts as `{}`); 400 otherwise."""
    raw = request.get_data(cache=True) or b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise validation_error(error, "Dados") from None


def query_args(model: type[M]) -> M:
    try:
        # `?status=` (empty) means no filter, as in an HTML form that left the field blank.
        return model.model_validate({k: v for k, v in request.args.items() if v != ""})
    except ValidationError as error:
        raise validation_error(error, "Parâmetros") from None


def current_api_user() -> User:
    user = g.get("api_user")
    if user is None:
        raise ApiError(401, "unauthorized", "Autenticação necessária.")
    return user


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(db: Session) -> User:
    """The token's user; marks the token used at most once a minute so reads rarely write."""
    token = _bearer_token()
    if token is None:
        raise ApiError(
            401, "unauthorized", "Informe o token de acesso no cabeçalho Authorization: Bearer <token>."
        )
    user = auth.user_for_token(db, token)
    if user is None:
        raise ApiError(401, "unauthorized", "Token de acesso inválido ou revogado.")
    row = db.scalars(select(ApiToken).where(ApiToken.token_hash == auth.hash_token(token))).one()
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_TOUCH_INTERVAL:
        row.last_used_at = now
    return user


# --- the registry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    user: User
    db: Session
    body: Any = None
    query: Any = None


@dataclass(frozen=True)
class Operation:
    method: str
    rule: str  # Flask syntax, relative to /api/v1
    func: Callable[..., Any]
    summary: str
    roles: frozenset[Role] | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    auth: bool

    @property
    def name(self) -> str:
        return self.func.__name__

    @property
    def path(self) -> str:
        """The OpenAPI path: `/tickets/<int:ticket_id>` becomes `/tickets/{ticket_id}`."""
        return _RULE_PARAM.sub(lambda m: "{" + m.group(2) + "}", self.rule)

    def path_params(self) -> list[tuple[str, str]]:
        return [(m.group(2), m.group(1) or "string") for m in _RULE_PARAM.finditer(self.rule)]


_RULE_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
OPERATIONS: dict[tuple[str, str], Operation] = {}


def endpoint(
    method: str,
    rule: str,
    *,
    summary: str,
    roles: frozenset[Role] | set[Role] | None = None,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    auth: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `func(call: ApiCall, **path_params)` as `method rule` under /api/v1 (see module doc)."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        op = Operation(
            method.upper(),
            rule,
            func,
            summary,
            frozenset(roles) if roles is not None else None,
            body,
            query,
            response,
            status,
            auth,
        )
        key = (op.method, op.path)
        known = OPERATIONS.get(key)
        if known is not None and known.func.__qualname__ != func.__qualname__:
            raise ValueError(f"{op.method} {op.path} is already served by {known.func.__qualname__}")
        clash = [o for o in OPERATIONS.values() if o.name == op.name and (o.method, o.path) != key]
        if clash:
            raise ValueError(f"API operation name {op.name!r} is already used")
        OPERATIONS[key] = op
        _openapi_cache.clear()
        return func

    return decorator


def _dispatch(op: Operation, path_args: dict[str, Any]) -> Response:
    db = database.session()
    try:
        user = authenticate(db) if op.auth else None
        g.api_user = user
        if op.roles is not None and (user is None or user.role not in op.roles):
            raise ApiError(403, "forbidden_role", "Seu perfil não permite esta ação.")
        call = ApiCall(
            user=user,  # type: ignore[arg-type]  # None only for public operations
            db=db,
            body=json_body(op.body) if op.body is not None else None,
            query=query_args(op.query) if op.query is not None else None,
        )
        result = op.func(call, **path_args)
        if op.response is not None and not isinstance(result, op.response):
            raise TypeError(f"{op.name} returned {type(result).__name__}, not {op.response.__name__}")
        payload = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        db.commit()
    except ApiError as error:
        db.rollback()
        return error_response(error.status, error.code, error.message, error.extra)
    except DomainError as error:
        db.rollback()
        return error_response(error.http_status, error.code, error.message)
    except IntegrityError:
        db.rollback()
        log.warning("API %s %s: integrity conflict", op.method, op.path, exc_info=True)
        return error_response(
            409, "conflict", "A operação conflita com uma alteração simultânea. Tente de novo."
        )
    except DataError:
        db.rollback()
        return error_response(400, "invalid_input", "Um dos valores enviados não cabe no campo.")
    except BaseException:
        db.rollback()
        raise
    response = jsonify(payload)
    response.status_code = op.status
    return response


def _view(op: Operation) -> Callable[..., Response]:
    def view(**path_args: Any) -> Response:
        return _dispatch(op, path_args)

    view.__name__ = op.name
    view.__doc__ = op.summary
    return view


# --- the OpenAPI document --------------------------------------------------------------------

_openapi_cache: dict[str, dict[str, Any]] = {}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
_ERROR_TEXT = {
    400: "Entrada inválida",
    401: "Sem token válido",
    403: "Perfil sem permissão",
    404: "Não encontrado",
    409: "Regra do fluxo impede a ação",
}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 built from the registry and the same pydantic models the endpoints validate with."""
    if "doc" in _openapi_cache:
        return _openapi_cache["doc"]
    inputs: list[tuple[type[BaseModel], Any]] = [(ErrorOut, "serialization")]
    for op in OPERATIONS.values():
        inputs += [(m, "validation") for m in (op.body, op.query) if m is not None]
        if op.response is not None:
            inputs.append((op.response, "serialization"))
    refs, defs = models_json_schema(inputs, ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for op in sorted(OPERATIONS.values(), key=lambda o: (o.path, o.method)):
        item: dict[str, Any] = {"operationId": op.name, "summary": op.summary, "tags": [_tag(op.path)]}
        if op.roles is not None:
            item["description"] = "Perfis: " + ", ".join(sorted(r.value for r in op.roles)) + "."
        params = [
            {"name": n, "in": "path", "required": True, "schema": _param_schema(conv)}
            for n, conv in op.path_params()
        ]
        if op.query is not None:
            query_schema = _resolve(refs[(op.query, "validation")], schemas)
            required = set(query_schema.get("required", []))
            params += [
                {"name": n, "in": "query", "required": n in required, "schema": s}
                for n, s in query_schema["properties"].items()
            ]
        if params:
            item["parameters"] = params
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        success = refs[(op.response, "serialization")] if op.response is not None else {"type": "object"}
        responses: dict[str, Any] = {
            str(op.status): {"description": "Sucesso", "content": {"application/json": {"schema": success}}}
        }
        for status in _error_statuses(op):
            responses[str(status)] = {
                "description": _ERROR_TEXT[status],
                "content": {"application/json": {"schema": _ERROR_REF}},
            }
        item["responses"] = responses
        if not op.auth:
            item["security"] = []
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = item

    doc = {
        "openapi": "3.1.0",
        "info": {"title": "E-extrato: mesa de implantação", "version": "1"},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
    _openapi_cache["doc"] = doc
    return doc


def _tag(path: str) -> str:
    return path.strip("/").split("/")[0]


def _param_schema(converter: str) -> dict[str, Any]:
    return {"type": "integer"} if converter == "int" else {"type": "string"}


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return schemas[ref.rsplit("/", 1)[1]] if ref else schema


def _error_statuses(op: Operation) -> list[int]:
    statuses = []
    if op.body is not None or op.query is not None:
        statuses.append(400)
    if op.auth:
        statuses.append(401)
    if op.roles is not None:
        statuses.append(403)
    if op.path_params():
        statuses.append(404)
    if op.method != "GET":
        statuses.append(409)
    return statuses


@endpoint("GET", "/openapi.json", summary="Este documento OpenAPI", auth=False)
def openapi_json(_call: ApiCall) -> dict[str, Any]:
    return openapi_document()


# --- wiring ----------------------------------------------------------------------------------


def _api_request_guard() -> Response | None:
    """Runs first of all before-request hooks: JSON 404/405 under /api/v1, and no CSRF there."""
    if not (request.path == PREFIX or request.path.startswith(PREFIX + "/")):
        return None
    routing_error = request.routing_exception
    if isinstance(routing_error, HTTPException):
        if routing_error.code == 405:
            return error_response(405, "method_not_allowed", "Método não permitido neste recurso.")
        return error_response(404, "not_found", "Recurso não encontrado.")
    csrf = current_app.extensions.get("csrf")
    if csrf is not None and request.blueprint == BLUEPRINT:
        # Token auth, never cookies: cross-site forgery has nothing to ride on.
        csrf.exempt(current_app.blueprints[BLUEPRINT])
    return None


def _internal_error(_error: InternalServerError) -> Response:
    return error_response(500, "internal_error", "Erro interno. Tente de novo mais tarde.")


def init_app(app: Flask) -> None:
    """Builds this app's /api/v1 blueprint from every operation registered so far."""
    from onboarding import api_workflow  # noqa: F401  (registers the workflow endpoints)

    bp = Blueprint(BLUEPRINT, __name__, url_prefix=PREFIX)
    for op in OPERATIONS.values():
        bp.add_url_rule(op.rule, endpoint=op.name, view_func=_view(op), methods=[op.method])
    bp.register_error_handler(InternalServerError, _internal_error)
    app.register_blueprint(bp)
    app.before_request_funcs.setdefault(None, []).insert(0, _api_request_guard)
