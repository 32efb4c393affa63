"""The profile page: who I am, and my API tokens (created here, shown once, stored hashed; revoked)."""

from __future__ import annotations

from flask import flash, make_response, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from onboarding import auth, db
from onboarding.errors import DomainError
from onboarding.models import ApiToken
from onboarding.web_common import actor, bp, run_action

MAX_LABEL = 100


def profile_page(new_token: str | None = None, label_draft: str = "") -> str:
    tokens = db.session().scalars(
        select(ApiToken).where(ApiToken.user_id == actor().id).order_by(ApiToken.created_at.desc())
    )
    return render_template(
        "onboarding/profile.html", tokens=list(tokens), new_token=new_token, label_draft=label_draft
    )


@bp.get("/profile")
def profile() -> ResponseReturnValue:
    return profile_page()


@bp.post("/profile/tokens")
def create_token() -> ResponseReturnValue:
    """Answered with the page itself, not a redirect: the token exists in clear only in this response."""
    label = (request.form.get("label") or "").strip()
    if not label or len(label) > MAX_LABEL:
        flash(f"Dê um nome ao token (até {MAX_LABEL} caracteres), por exemplo \u201cplanilha\u201d.", "error")
        return profile_page(label_draft=label[:MAX_LABEL]), 400
    session = db.session()
    try:
        token = auth.issue_token(session, actor(), label=label)
        session.commit()
    except DomainError as error:
        session.rollback()
        flash(error.message, "error")
        return profile_page(), error.http_status
    flash(f"Token \u201c{label}\u201d criado. Copie-o agora: ele não será mostrado de novo.", "success")
    response = make_response(profile_page(new_token=token))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/profile/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int) -> ResponseReturnValue:
    return run_action(
        lambda session, user: auth.revoke_token(session, user, token_id),
        success=lambda row: f"Token \u201c{row.label}\u201d revogado.",
        redirect_to=url_for("web.profile"),
        back=profile_page,
    )
