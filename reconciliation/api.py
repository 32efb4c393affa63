"""Reconciliation endpoints of the JSON API (`/api/v1`, SPEC section 5), on the `onboarding.api` shell.

`POST /sales` (developer, admin), `PATCH /sales/{sale_id}` (agent, admin),
`GET /reconciliation/summary` and `GET /reconciliation/items` (every role). Inputs keep their own
checks and error codes (`invalid_sales`, `invalid_correction`, `invalid_date`, ...); a refused
call changes nothing.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import RootModel, WithJsonSchema

from onboarding.api import ApiCall, ApiError, ItemErrorOut, endpoint
from onboarding.api_schemas import QueryModel, ResponseModel
from onboarding.errors import InvalidInput
from onboarding.models import Role
from reconciliation import corrections, engine, importers
from reconciliation.models import Result

MAX_SALES_PER_REQUEST = 10_000
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500


def _documented(schema: dict[str, Any]) -> Any:
    """Raw text validated by the endpoint itself (its own error codes), documented as `schema`
    (or absent: the default is None)."""
    nullable = {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        nullable["enum"] = [*schema["enum"], None]
    return Annotated[str | None, WithJsonSchema(nullable)]


# --- models ----------------------------------------------------------------------------------

_SALE_ITEM = {"type": "object", "description": "Um recebimento, com os campos da seção 6 do SPEC."}


class SalesBatchIn(
    RootModel[
        Annotated[
            Any,
            WithJsonSchema(
                {
                    "oneOf": [
                        {
                            "type": "array",
                            "items": _SALE_ITEM,
                            "minItems": 1,
                            "maxItems": MAX_SALES_PER_REQUEST,
                        },
                        {
                            "type": "object",
                            "properties": {"sales": {"type": "array", "items": _SALE_ITEM}},
                            "required": ["sales"],
                        },
                    ]
                }
            ),
        ]
    ]
):
    """A list of receipts or `{"sales": [...]}`; each item is checked on its own."""


class SaleCorrectionIn(
    RootModel[
        Annotated[
            Any,
            WithJsonSchema(
                {
                    "type": "object",
                    "description": "Os campos a corrigir (os mesmos de `recon correct`).",
                }
            ),
        ]
    ]
):
    pass


class SalesImportOut(ResponseModel):
    batch_id: int | None
    received: int
    inserted: int
    ignored: int
    errors: list[ItemErrorOut]


class CorrectionOut(ResponseModel):
    id: int
    corrected_on: str
    before: dict[str, Any]
    after: dict[str, Any]


class SaleOut(ResponseModel):
    sale_id: str
    establishment_code: str
    sale_datetime: str
    amount: str
    amount_cents: int
    payment_type: str
    brand: str
    acquirer: str
    installments: int
    authorization_code: str | None
    nsu: str | None
    origin: str
    tid: str | None
    txid: str | None
    terminal: str | None
    cnpj: str | None
    corrected_on: str | None
    resend_pending: bool
    correction: CorrectionOut


_DATE = {"type": "string", "format": "date"}


class SummaryQuery(QueryModel):
    establishment: str | None = None
    as_of: _documented(_DATE) = None  # type: ignore[valid-type]


class ItemsQuery(SummaryQuery):
    status: _documented({"type": "string", "enum": list(engine.STATUSES)}) = None  # type: ignore[valid-type]
    page: _documented({"type": "integer", "minimum": 1, "default": 1}) = None  # type: ignore[valid-type]
    per_page: _documented(  # type: ignore[valid-type]
        {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": DEFAULT_PER_PAGE}
    ) = None


class SummaryOut(ResponseModel):
    as_of: str
    establishment: str | None
    receipts: int
    statement_rows: int
    status: dict[str, int]
    divergences: dict[str, int]
    sales: dict[str, int]
    statements: dict[str, int]
    sale_divergences: dict[str, int]


class ResultItemOut(ResponseModel):
    kind: str
    id: str
    status: str
    divergences: list[str]
    counterpart_ids: list[str]
    rule: str
    establishment_code: str


class ItemsPageOut(ResponseModel):
    items: list[ResultItemOut]
    page: int
    per_page: int
    total: int
    as_of: str


# --- endpoints -------------------------------------------------------------------------------


@endpoint(
    "POST",
    "/sales",
    summary="Recebe um lote de vendas com cartão do ERP",
    roles={Role.DEVELOPER, Role.ADMIN},
    body=SalesBatchIn,
    response=SalesImportOut,
)
def post_sales(call: ApiCall) -> SalesImportOut:
    body = call.body.root
    items = body.get("sales") if isinstance(body, dict) else body
    if not isinstance(items, list) or not items:
        raise InvalidInput(
            "invalid_sales", 'Envie uma lista não vazia de recebimentos (ou {"sales": [...]}).'
        )
    if len(items) > MAX_SALES_PER_REQUEST:
        raise InvalidInput(
            "too_many_sales", f"No máximo {MAX_SALES_PER_REQUEST} recebimentos por requisição."
        )
    report = importers.import_sales_items(call.db, items, tz=engine.settings().tz, user=call.user)
    errors = [
        ItemErrorOut(
            index=e.line,
            sale_id=items[e.line].get("sale_id") if isinstance(items[e.line], dict) else None,
            message=e.reason,
        )
        for e in report.errors
    ]
    if len(errors) == len(items):
        raise ApiError(
            400,
            "invalid_sales",
            "Nenhum recebimento válido no lote.",
            {"errors": [e.model_dump(mode="json") for e in errors]},
        )
    return SalesImportOut(
        batch_id=report.batch_id,
        received=len(items),
        inserted=report.inserted,
        ignored=report.ignored,
        errors=errors,
    )


@endpoint(
    "PATCH",
    "/sales/<path:sale_id>",
    summary="Corrige uma venda",
    roles={Role.AGENT, Role.ADMIN},
    body=SaleCorrectionIn,
    response=SaleOut,
)
def patch_sale(call: ApiCall, sale_id: str) -> SaleOut:
    body = call.body.root
    if not isinstance(body, dict):
        raise InvalidInput("invalid_correction", "Envie um objeto com os campos a corrigir.")
    tz = engine.settings().tz
    stored, correction = corrections.correct_sale(
        call.db, sale_id, body, actor=call.user, source="api", tz=tz
    )
    return SaleOut(
        **corrections.sale_as_dict(stored, tz),
        correction=CorrectionOut(
            id=correction.id,
            corrected_on=correction.corrected_on.isoformat(),
            before=correction.before,
            after=correction.after,
        ),
    )


def _query_date(name: str, raw: str | None) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("invalid_date", f"Parâmetro {name} inválido: {raw!r} (use AAAA-MM-DD).") from None


def _query_int(name: str, raw: str | None, default: int, minimum: int, maximum: int) -> int:
    raw = (raw or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise InvalidInput(
            "invalid_paging", f"Parâmetro {name} inválido: use um número de {minimum} a {maximum}."
        )
    return int(raw)


@endpoint(
    "GET",
    "/reconciliation/summary",
    summary="Contagens da conciliação por status e divergência",
    roles=None,
    query=SummaryQuery,
    response=SummaryOut,
)
def reconciliation_summary(call: ApiCall) -> SummaryOut:
    code = engine.normalize_code(call.query.establishment or None)
    as_of = engine.ensure_results(
        as_of=_query_date("as_of", call.query.as_of), establishment=code, trigger="api"
    )
    counts = engine.count_results(call.db, code)
    return SummaryOut(as_of=as_of.isoformat(), establishment=code, **counts.as_dict())


@endpoint(
    "GET",
    "/reconciliation/items",
    summary="Linhas do resultado da conciliação (seção 8 do SPEC)",
    roles=None,
    query=ItemsQuery,
    response=ItemsPageOut,
)
def reconciliation_items(call: ApiCall) -> ItemsPageOut:
    query: ItemsQuery = call.query
    code = engine.normalize_code(query.establishment or None)
    status = (query.status or "").strip().lower() or None
    if status is not None and status not in engine.STATUSES:
        raise InvalidInput(
            "invalid_status", f"Status inválido: {status!r}. Use um de: {', '.join(engine.STATUSES)}."
        )
    page = _query_int("page", query.page, 1, 1, 10**9)
    per_page = _query_int("per_page", query.per_page, DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    as_of = engine.ensure_results(as_of=_query_date("as_of", query.as_of), establishment=code, trigger="api")
    table = Result.__table__
    conditions = []
    if code is not None:
        conditions.append(table.c.establishment_code == code)
    if status is not None:
        conditions.append(table.c.status == status)
    total = call.db.scalar(sa.select(sa.func.count()).select_from(table).where(*conditions)) or 0
    rows = call.db.execute(
        sa.select(table)
        .where(*conditions)
        .order_by(table.c.kind, table.c.record_key)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return ItemsPageOut(
        items=[
            ResultItemOut(
                kind=row.kind,
                id=row.record_key,
                status=row.status,
                divergences=row.divergences.split("|") if row.divergences else [],
                counterpart_ids=row.counterpart_ids.split("|") if row.counterpart_ids else [],
                rule=row.rule,
                establishment_code=row.establishment_code,
            )
            for row in rows
        ],
        page=page,
        per_page=per_page,
        total=total,
        as_of=as_of.isoformat(),
    )
