"""The developers' queue: take an integration task, enable it for establishment codes, return it."""

from __future__ import annotations

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from onboarding import db, services
from onboarding.models import DevTask, DevTaskStatus, User
from onboarding.queries import page_args
from onboarding.web_common import DEVELOPER_ROLES, actor, bp, require_roles, run_action
from onboarding.web_forms import split_codes
from onboarding.work_queues import list_dev_tasks

DEV_STATUS_LABELS = {
    DevTaskStatus.OPEN: "Aguardando",
    DevTaskStatus.TAKEN: "Em andamento",
    DevTaskStatus.ENABLED: "Habilitada",
    DevTaskStatus.RETURNED: "Devolvida",
}
VIEWS = {
    "active": ("Em aberto", (DevTaskStatus.OPEN, DevTaskStatus.TAKEN, DevTaskStatus.ENABLED)),
    "mine": ("Minhas", (DevTaskStatus.TAKEN, DevTaskStatus.ENABLED)),
    "returned": ("Devolvidas", (DevTaskStatus.RETURNED,)),
    "all": ("Todas", None),
}


@bp.get("/dev-tasks")
def dev_queue() -> ResponseReturnValue:
    refused = require_roles(DEVELOPER_ROLES, "ver a fila do desenvolvimento")
    if refused is not None:
        return refused
    view = request.args.get("view", "active")
    if view not in VIEWS:
        view = "active"
    page, per_page = page_args(request.args.get("page"), request.args.get("per_page"))
    statuses = VIEWS[view][1]
    result = list_dev_tasks(
        db.session(),
        [s.value for s in statuses] if statuses is not None else None,
        page,
        per_page,
        assignee_id=actor().id if view == "mine" else None,
    )
    return render_template(
        "onboarding/dev_tasks.html",
        page=result,
        view=view,
        views=[(key, label) for key, (label, _) in VIEWS.items()],
        status_labels=DEV_STATUS_LABELS,
    )


def _back() -> ResponseReturnValue:
    return dev_queue()


def _to_queue() -> str:
    return url_for("web.dev_queue", view=request.args.get("view", "active"))


@bp.post("/dev-tasks/<int:task_id>/take")
def take_dev_task(task_id: int) -> ResponseReturnValue:
    return run_action(
        lambda session, user: services.take_dev_task(session, user, task_id),
        success=lambda task: f"Você assumiu a integração do chamado {task.ticket.number}.",
        redirect_to=_to_queue(),
        back=_back,
    )


@bp.post("/dev-tasks/<int:task_id>/enable")
def enable_dev_task(task_id: int) -> ResponseReturnValue:
    raw_codes = request.form.get("establishment_codes")

    def enable(session: Session, user: User) -> DevTask:
        services.require_role(user, services.DEVELOPERS, "habilitar integração")
        return services.enable_dev_task(session, user, task_id, split_codes(raw_codes))

    return run_action(
        enable,
        success=lambda task: (
            f"Integração do chamado {task.ticket.number} habilitada para "
            f"{', '.join(task.establishment_codes)}."
        ),
        redirect_to=_to_queue(),
        back=_back,
    )


@bp.post("/dev-tasks/<int:task_id>/return")
def return_dev_task(task_id: int) -> ResponseReturnValue:
    return run_action(
        lambda session, user: services.return_dev_task(session, user, task_id),
        success=lambda task: f"Integração do chamado {task.ticket.number} devolvida ao atendimento.",
        redirect_to=_to_queue(),
        back=_back,
    )
