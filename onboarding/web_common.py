"""What every web page shares: the blueprint, the signed-in actor, role labels, and POST handling.

Every state change goes through `run_action`: the service call either commits and redirects
(post/redirect/get), or raises a DomainError, in which case nothing is committed, the pt-BR reason
is flashed and the page is shown again with the error's status (403 role, 409 rule, 400 input).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Blueprint, flash, redirect, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session

from onboarding import db
from onboarding.errors import DomainError
from onboarding.models import Role, User

bp = Blueprint("web", __name__)

T = TypeVar("T")

ROLE_LABELS: dict[str, str] = {
    Role.AGENT: "Atendimento",
    Role.DEVELOPER: "Desenvolvimento",
    Role.FINANCE: "Financeiro",
    Role.ADMIN: "Administração",
}
AGENT_ROLES = frozenset({Role.AGENT.value, Role.ADMIN.value})
DEVELOPER_ROLES = frozenset({Role.DEVELOPER.value, Role.ADMIN.value})
FINANCE_ROLES = frozenset({Role.FINANCE.value, Role.ADMIN.value})


def actor() -> User:
    """The signed-in user as an ORM object of the request's session (loaded on first use)."""
    return current_user.user  # type: ignore[no-any-return]


def actor_role() -> str:
    """The signed-in user's role as read for this request, without loading the ORM row."""
    return current_user.role  # type: ignore[no-any-return]


def has_role(roles: Iterable[str]) -> bool:
    return bool(current_user.is_authenticated) and actor_role() in set(roles)


def refused_page(message: str, status: int = 403) -> ResponseReturnValue:
    return render_template("onboarding/refused.html", message=message), status


def roles_sentence(roles: Iterable[str]) -> str:
    """ "os perfis Administração ou Financeiro" / "o perfil Financeiro"."""
    labels = sorted(ROLE_LABELS.get(r, r) for r in set(roles))
    if len(labels) == 1:
        return f"o perfil {labels[0]}"
    return f"os perfis {', '.join(labels[:-1])} ou {labels[-1]}"


def role_refusal(roles: Iterable[str], action: str) -> str:
    """E.g. "Somente os perfis Administração ou Financeiro podem ver a fila do financeiro; seu perfil é
    Desenvolvimento." """
    allowed = list(set(roles))
    verb = "pode" if len(allowed) == 1 else "podem"
    mine = ROLE_LABELS.get(actor_role(), actor_role())
    return f"Somente {roles_sentence(allowed)} {verb} {action}; seu perfil é {mine}."


def require_roles(roles: Iterable[str], action: str) -> ResponseReturnValue | None:
    """None when the user may do `action` (an infinitive phrase), else the refusal page (403)."""
    allowed = set(roles)
    if actor_role() in allowed:
        return None
    return refused_page(role_refusal(allowed, action))


def run_action(
    action: Callable[[Session, User], T],
    *,
    success: str | Callable[[T], str],
    redirect_to: str | Callable[[T], str],
    back: Callable[[], ResponseReturnValue],
) -> ResponseReturnValue:
    session = db.session()
    try:
        result = action(session, actor())
        session.commit()
    except DomainError as error:
        session.rollback()
        flash(error.message, "error")
        return _body(back()), error.http_status
    flash(success(result) if callable(success) else success, "success")
    target = redirect_to(result) if callable(redirect_to) else redirect_to
    return redirect(target, code=303)


def _body(response: ResponseReturnValue) -> Any:
    return response[0] if isinstance(response, tuple) else response
