"""Web pages. (Placeholder queue until the checklist UI lands.)"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template
from sqlalchemy import select

from onboarding import db
from onboarding.models import Ticket

bp = Blueprint("web", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/")
def queue() -> str:
    tickets = db.session().scalars(select(Ticket).order_by(Ticket.created_at).limit(50)).all()
    return render_template("onboarding/queue.html", tickets=tickets)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
