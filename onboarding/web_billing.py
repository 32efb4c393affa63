"""The finance queue: billing requests from finished onboardings, registered with an invoice reference."""

from __future__ import annotations

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from onboarding import db, services
from onboarding.errors import InvalidInput
from onboarding.models import BillingRequest, BillingStatus, User
from onboarding.queries import page_args
from onboarding.web_common import FINANCE_ROLES, bp, require_roles, run_action
from onboarding.work_queues import list_billing_requests, users_by_id

BILLING_STATUS_LABELS = {
    BillingStatus.REQUESTED: "Aguardando registro",
    BillingStatus.REGISTERED: "Registrada",
}
MAX_INVOICE_REF = 100
VIEWS = {
    "requested": ("Aguardando registro", (BillingStatus.REQUESTED,)),
    "registered": ("Registradas", (BillingStatus.REGISTERED,)),
    "all": ("Todas", None),
}


@bp.get("/billing")
def billing_queue() -> ResponseReturnValue:
    refused = require_roles(FINANCE_ROLES, "ver a fila do financeiro")
    if refused is not None:
        return refused
    view = request.args.get("view", "requested")
    if view not in VIEWS:
        view = "requested"
    page, per_page = page_args(request.args.get("page"), request.args.get("per_page"))
    statuses = VIEWS[view][1]
    session = db.session()
    result = list_billing_requests(
        session, [s.value for s in statuses] if statuses is not None else None, page, per_page
    )
    return render_template(
        "onboarding/billing.html",
        page=result,
        view=view,
        views=[(key, label) for key, (label, _) in VIEWS.items()],
        status_labels=BILLING_STATUS_LABELS,
        requesters=users_by_id(session, (r.requested_by_id for r in result.items)),
    )


@bp.post("/billing/<int:request_id>/register")
def register_billing(request_id: int) -> ResponseReturnValue:
    invoice_ref = (request.form.get("invoice_ref") or "").strip()

    def register(session: Session, user: User) -> BillingRequest:
        services.require_role(user, services.FINANCE, "registrar cobrança")
        if len(invoice_ref) > MAX_INVOICE_REF:
            raise InvalidInput(
                "invoice_ref_too_long",
                f"A referência da fatura deve ter no máximo {MAX_INVOICE_REF} caracteres.",
            )
        return services.register_billing(session, user, request_id, invoice_ref)

    return run_action(
        register,
        success=lambda billing: (
            f"Cobrança do chamado {billing.ticket.number} registrada (fatura {billing.invoice_ref})."
        ),
        redirect_to=url_for("web.billing_queue", view=request.args.get("view", "requested")),
        back=billing_queue,
    )
