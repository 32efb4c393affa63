"""The server-rendered desk (pt-BR): wiring of the web pages into the app.

The pages live in small modules on one blueprint named "web": `web_auth` (sign-in), `web_queue`
(home and ticket queue), `web_ticket` (checklist page), `web_devtasks`, `web_billing`, `web_profile`.
Other packages extend the ticket page through the registry re-exported here
(`register_timeline_source`, `register_ticket_panel`, `register_nav_item`).

CSRF: every POST/PUT/PATCH/DELETE outside `/api/` must carry the session's token (form field
`csrf_token` or header `X-CSRFToken`). The JSON API (blueprint "api" or "api_v1", bearer tokens) is
exempt by name and by path, whether it is registered before or after this module.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from onboarding import (  # noqa: F401  (the route modules register themselves on the blueprint)
    formatting,
    web_auth,
    web_billing,
    web_devtasks,
    web_profile,
    web_queue,
    web_ticket,
)
from onboarding.services import STEP_LABELS
from onboarding.web_common import ROLE_LABELS, bp
from onboarding.web_hooks import (
    NavItem,
    TicketPanel,
    TimelineEntry,
    nav_items_for,
    register_nav_item,
    register_ticket_panel,
    register_timeline_source,
)

__all__ = [
    "NavItem",
    "TicketPanel",
    "TimelineEntry",
    "bp",
    "csrf",
    "init_app",
    "register_nav_item",
    "register_ticket_panel",
    "register_timeline_source",
]

STEP_NAMES = {key.value: label for key, label in STEP_LABELS.items()}
API_BLUEPRINTS = frozenset({"api", "api_v1"})
API_PREFIX = "/api/"
csrf = CSRFProtect()

# The built-in top-bar links; other packages add theirs with register_nav_item.
register_nav_item("Chamados", "web.ticket_queue", ("agent", "admin", "developer", "finance"))
register_nav_item("Novo chamado", "web.new_ticket", ("agent", "admin"))
register_nav_item("Desenvolvimento", "web.dev_queue", ("developer", "admin"))
register_nav_item("Financeiro", "web.billing_queue", ("finance", "admin"))

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def is_api_request() -> bool:
    blueprint = (request.blueprint or "").split(".", 1)[0]
    return blueprint in API_BLUEPRINTS or request.path.startswith(API_PREFIX)


def _csrf_before_request() -> None:
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if request.endpoint is None or is_api_request():
        return
    csrf.protect(apply_exemptions=True)  # also honours csrf.exempt(...) made by other packages


def _security_headers(response: Response) -> Response:
    if not is_api_request():
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def _csrf_error(error: CSRFError) -> ResponseReturnValue:
    message = (
        "O formulário expirou ou não veio desta página (proteção CSRF). Recarregue a página e tente de novo."
    )
    return render_template("onboarding/error.html", status=400, message=message), 400


def _http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    if is_api_request():  # the API's own handlers win inside its views; this covers routing errors
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "error")
        return jsonify(error=code, message=error.description or ""), status
    messages = {
        404: "Página não encontrada.",
        405: "Método não permitido.",
        500: "Erro interno. A operação não foi concluída; tente de novo.",
    }
    message = messages.get(status, error.description or "Erro.")
    return render_template("onboarding/error.html", status=status, message=message), status


def _template_globals() -> dict[str, Any]:
    def page_url(number: int, endpoint: str | None = None) -> str:
        """This listing's URL at page `number`, keeping its filters (`endpoint` when rendered by a POST)."""
        args = request.args.to_dict()
        args["page"] = str(number)
        if endpoint is not None:
            return url_for(endpoint, **args)
        return url_for(request.endpoint or "web.home", **(request.view_args or {}), **args)

    nav = []
    if current_user.is_authenticated:
        endpoints = current_app.view_functions
        nav = [item for item in nav_items_for(current_user.role) if item.endpoint in endpoints]
    return {"role_labels": ROLE_LABELS, "step_names": STEP_NAMES, "nav_items": nav, "page_url": page_url}


def init_app(app: Flask) -> None:
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session: agents keep pages open
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # we check in _csrf_before_request, API exempt
    csrf.init_app(app)
    app.before_request(_csrf_before_request)
    formatting.init_app(app)
    web_auth.init_app(app)
    app.register_blueprint(bp)
    app.after_request(_security_headers)
    app.context_processor(_template_globals)
    app.register_error_handler(CSRFError, _csrf_error)
    for status in (404, 405):
        app.register_error_handler(status, _http_error)
