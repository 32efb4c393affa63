"""The home page per role, the agents' ticket queue and opening a ticket by hand."""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from onboarding import db, services
from onboarding.models import Role, StepKey, TicketStatus
from onboarding.queries import Page, QueueRow, TicketFilter, page_args, queue_page
from onboarding.web_billing import billing_queue
from onboarding.web_common import AGENT_ROLES, actor_role, bp, require_roles, run_action
from onboarding.web_devtasks import dev_queue
from onboarding.web_forms import OpenTicketForm, split_codes
from onboarding.web_timeline import step_label
from onboarding.work_queues import assignable_agents

STATUS_CHOICES = (("open", "Abertos"), ("closed", "Encerrados"), ("all", "Todos"))
SORT_CHOICES = (("oldest", "Mais antigos primeiro"), ("newest", "Mais recentes primeiro"))
COUNT_LIMIT = 1000  # beyond this the queue says "mais de 1.000": nobody pages that far
STATUSES = frozenset(value for value, _ in STATUS_CHOICES)
STEPS = tuple((key.value, step_label(key)) for key in StepKey)
STEP_KEYS = frozenset(value for value, _ in STEPS)


@dataclass(frozen=True)
class QueueArgs:
    status: str
    step: str
    assignee: str  # "", "me" or a user id
    q: str
    sort: str
    page: int
    per_page: int

    @classmethod
    def from_request(cls) -> QueueArgs:
        args = request.args
        status = args.get("status", "open")
        step = args.get("step", "")
        page, per_page = page_args(args.get("page"), args.get("per_page"))
        return cls(
            status=status if status in STATUSES else "open",
            step=step if step in STEP_KEYS else "",
            assignee=(args.get("assignee") or "").strip(),
            q=(args.get("q") or "").strip()[:100],
            sort="newest" if args.get("sort") == "newest" else "oldest",
            page=page,
            per_page=per_page,
        )

    def ticket_filter(self) -> TicketFilter:
        assignee_id: int | None = None
        if self.assignee == "me":
            assignee_id = current_user.id
        elif self.assignee.isdigit():
            assignee_id = int(self.assignee)
        return TicketFilter(
            status=None if self.status == "all" else self.status,
            step=self.step or None,
            assignee_id=assignee_id,
            q=self.q or None,
        )


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/")
def home() -> ResponseReturnValue:
    """After sign-in `/` is the user's own queue."""
    role = actor_role()
    if role == Role.DEVELOPER:
        return dev_queue()
    if role == Role.FINANCE:
        return billing_queue()
    return ticket_queue()


@bp.get("/tickets")
def ticket_queue() -> ResponseReturnValue:
    args = QueueArgs.from_request()
    session = db.session()
    page: Page[QueueRow] = queue_page(
        session,
        args.ticket_filter(),
        args.page,
        args.per_page,
        newest_first=args.sort == "newest",
        count_limit=COUNT_LIMIT,
    )
    return render_template(
        "onboarding/queue.html",
        page=page,
        args=args,
        statuses=STATUS_CHOICES,
        sorts=SORT_CHOICES,
        steps=STEPS,
        agents=assignable_agents(session),
        closed=TicketStatus.CLOSED.value,
    )


@bp.route("/tickets/new", methods=["GET", "POST"])
def new_ticket() -> ResponseReturnValue:
    refused = require_roles(AGENT_ROLES, "abrir chamados")
    form = OpenTicketForm()
    if request.method == "POST" and refused is None and form.validate_on_submit():
        return run_action(
            lambda session, user: services.open_ticket(
                session,
                user,
                customer_name=form.customer_name.data or "",
                cnpj=form.cnpj.data,
                establishment_codes=split_codes(form.establishment_codes.data),
                contact_email=(form.contact_email.data or "").strip(),
            ),
            success=lambda ticket: f"Chamado {ticket.number} aberto.",
            redirect_to=lambda ticket: url_for("web.ticket", ticket_id=ticket.id),
            back=lambda: _new_ticket_page(form),
        )
    if refused is not None:
        return refused
    status = 400 if form.errors else 200
    return _new_ticket_page(form), status


def _new_ticket_page(form: OpenTicketForm) -> str:
    return render_template("onboarding/ticket_new.html", form=form)
