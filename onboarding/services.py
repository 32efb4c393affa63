"""The workflow rules, in one place used by the web, the API, the CLI, mail ingest and jobs.

Service functions take a session and plain values, only flush, and leave the commit to the caller.
A refused action raises a DomainError before anything is written, so the caller's rollback leaves
the database unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from stdnum.br import cnpj as cnpj_lib

from onboarding import audit
from onboarding.db import utcnow
from onboarding.errors import InvalidInput, NotFound, PermissionDenied, WorkflowError
from onboarding.models import (
    STEP_ORDER,
    BillingRequest,
    BillingStatus,
    Customer,
    DevTask,
    DevTaskStatus,
    EstablishmentCode,
    Role,
    StepKey,
    StepStatus,
    Ticket,
    TicketStatus,
    TicketStep,
    User,
)

FLAG_INCOMPLETE = "incomplete_data"
AGENTS = frozenset({Role.AGENT, Role.ADMIN})
DEVELOPERS = frozenset({Role.DEVELOPER, Role.ADMIN})
FINANCE = frozenset({Role.FINANCE, Role.ADMIN})

STEP_LABELS = {
    StepKey.CONTRACT: "Contratação",
    StepKey.DEV_HANDOFF: "Encaminhamento ao desenvolvimento",
    StepKey.VALIDATION: "Integração e validação",
    StepKey.ORIENTATION: "Orientação ao cliente",
    StepKey.BILLING: "Solicitação de cobrança",
}

# A guard returns None when the step may complete, or (code, pt-BR reason) when it may not.
StepGuard = Callable[[Session, Ticket], tuple[str, str] | None]


@dataclass(frozen=True)
class StepRule:
    roles: frozenset[Role]
    guards: tuple[StepGuard, ...] = ()


def _dev_task_returned(_db: Session, ticket: Ticket) -> tuple[str, str] | None:
    task = ticket.dev_task
    if task is None or task.status != DevTaskStatus.RETURNED:
        return (
            "dev_task_not_returned",
            "A validação só pode ser concluída depois que o desenvolvimento devolver a integração.",
        )
    return None


STEP_RULES: dict[StepKey, StepRule] = {
    StepKey.CONTRACT: StepRule(AGENTS),
    StepKey.DEV_HANDOFF: StepRule(AGENTS),
    StepKey.VALIDATION: StepRule(AGENTS, (_dev_task_returned,)),
    StepKey.ORIENTATION: StepRule(AGENTS),
    StepKey.BILLING: StepRule(AGENTS),
}

# Hooks other packages register (reconciliation adds a validation guard, mail adds notifications)
# so that onboarding never imports them.
_extra_guards: dict[StepKey, list[StepGuard]] = {key: [] for key in StepKey}
StepListener = Callable[[Session, Ticket, TicketStep, User | None], None]
_step_listeners: list[StepListener] = []
TaskListener = Callable[[Session, DevTask, User | None], None]
_task_returned_listeners: list[TaskListener] = []


def add_step_guard(key: StepKey, guard: StepGuard) -> None:
    if guard not in _extra_guards[key]:
        _extra_guards[key].append(guard)


def on_step_completed(listener: StepListener) -> None:
    if listener not in _step_listeners:
        _step_listeners.append(listener)


def on_dev_task_returned(listener: TaskListener) -> None:
    if listener not in _task_returned_listeners:
        _task_returned_listeners.append(listener)


# --- helpers ---------------------------------------------------------------------------------


def require_role(actor: User | None, roles: Iterable[Role], action: str) -> None:
    """System actions (actor None) are trusted; people need one of the roles."""
    if actor is None:
        return
    if not actor.active or actor.role not in set(roles):
        raise PermissionDenied(
            "forbidden_role", f"Seu perfil não permite esta ação ({action}).", http_status=403
        )


def normalize_cnpj(value: str | None) -> str | None:
    """Digits of a valid CNPJ, None when empty; InvalidInput when it fails its check digits."""
    if value is None or not str(value).strip():
        return None
    digits = cnpj_lib.compact(str(value))
    if not cnpj_lib.is_valid(digits):
        raise InvalidInput("invalid_cnpj", f"CNPJ inválido: {value}. Confira os dígitos verificadores.")
    return digits


def format_cnpj(digits: str | None) -> str:
    return cnpj_lib.format(digits) if digits else ""


def clean_codes(codes: Iterable[str] | None) -> list[str]:
    seen: list[str] = []
    for code in codes or []:
        code = str(code).strip()
        if code and code not in seen:
            seen.append(code)
    return seen


def get_ticket(db: Session, ticket_id: int, *, lock: bool = False) -> Ticket:
    """The ticket, row-locked on PostgreSQL when `lock` (SQLite ignores FOR UPDATE)."""
    query = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        query = query.with_for_update()
    ticket = db.scalars(query).one_or_none()
    if ticket is None:
        raise NotFound("ticket_not_found", f"Chamado {ticket_id} não encontrado.")
    if lock:
        db.refresh(ticket)
    return ticket


def _refuse_if_closed(ticket: Ticket) -> None:
    if ticket.status == TicketStatus.CLOSED:
        raise WorkflowError(
            "ticket_closed", f"O chamado {ticket.number} está encerrado e não aceita alterações."
        )


def _step_state(step: TicketStep) -> dict[str, object]:
    return {
        "status": step.status,
        "completed_by": step.completed_by_id,
        "completed_at": step.completed_at.isoformat() if step.completed_at else None,
        "notes": step.notes,
    }


def _advance_current_step(ticket: Ticket) -> None:
    pending = [s.key for s in ticket.steps if s.status != StepStatus.DONE]
    ticket.current_step = pending[0] if pending else None


# --- tickets ---------------------------------------------------------------------------------


def open_ticket(
    db: Session,
    actor: User | None,
    *,
    customer_name: str,
    cnpj: str | None,
    establishment_codes: Iterable[str] | None = None,
    contact_email: str = "",
    contact_name: str = "",
    contact_phone: str = "",
    trade_name: str = "",
    subject: str = "",
    flags: Iterable[str] = (),
    strict: bool = True,
    contract_evidence: str | None = None,
) -> Ticket:
    """Open a ticket with its five pending steps.

    `strict` (people and the API): an invalid CNPJ is refused. Mail ingest passes strict=False:
    the ticket still opens, flagged with what is missing. `contract_evidence` (the mail that
    proves the contract) completes step `contract` on the system's behalf.
    """
    require_role(actor, AGENTS, "abrir chamado")
    flag_list = list(dict.fromkeys(flags))
    try:
        digits = normalize_cnpj(cnpj)
    except InvalidInput:
        if strict:
            raise
        digits = None
        flag_list.append("invalid_cnpj")
    codes = clean_codes(establishment_codes)
    if strict and not (customer_name or "").strip():
        raise InvalidInput("missing_customer_name", "Informe o nome do cliente.")
    if digits is None and "missing_cnpj" not in flag_list and "invalid_cnpj" not in flag_list:
        flag_list.append("missing_cnpj")
    if not codes:
        flag_list.append("missing_establishment_code")
    if (digits is None or not codes) and FLAG_INCOMPLETE not in flag_list:
        flag_list.insert(0, FLAG_INCOMPLETE)

    customer = find_customer(db, digits) if digits else None
    if customer is None:
        customer = Customer(cnpj=digits)
        db.add(customer)
    # New data wins; what the new request leaves empty keeps the customer's known value.
    customer.name = (customer_name or "").strip() or customer.name or ""
    customer.trade_name = (trade_name or "").strip() or customer.trade_name or ""
    customer.contact_email = (contact_email or "").strip() or customer.contact_email or ""
    customer.contact_name = (contact_name or "").strip() or customer.contact_name or ""
    customer.contact_phone = (contact_phone or "").strip() or customer.contact_phone or ""
    for code in codes:
        if code not in customer.establishment_codes:
            customer.establishments.append(EstablishmentCode(code=code))

    ticket = Ticket(
        subject=subject or f"Integração E-extrato - {customer.name or 'cliente'}",
        customer=customer,
        flags=list(dict.fromkeys(flag_list)),
        status=TicketStatus.OPEN,
        current_step=StepKey.CONTRACT,
    )
    ticket.steps = [TicketStep(key=key, position=i + 1) for i, key in enumerate(STEP_ORDER)]
    db.add(ticket)
    db.flush()
    ticket.number = f"EX-{ticket.id:06d}"
    audit.record(db, actor, "ticket.opened", ticket, ticket_id=ticket.id, after=_ticket_state(ticket))
    if contract_evidence is not None:
        _mark_step_done(db, ticket, ticket.step(StepKey.CONTRACT), None, notes="", evidence=contract_evidence)
    db.flush()
    return ticket


def find_customer(db: Session, cnpj_digits: str) -> Customer | None:
    return db.scalars(select(Customer).where(Customer.cnpj == cnpj_digits).order_by(Customer.id)).first()


def find_open_ticket_for_customer(db: Session, cnpj_digits: str) -> Ticket | None:
    return db.scalars(
        select(Ticket)
        .join(Customer)
        .where(Customer.cnpj == cnpj_digits, Ticket.status != TicketStatus.CLOSED)
        .order_by(Ticket.id)
    ).first()


def _ticket_state(ticket: Ticket) -> dict[str, object]:
    return {
        "number": ticket.number,
        "status": ticket.status,
        "current_step": ticket.current_step,
        "assignee": ticket.assignee_id,
        "flags": list(ticket.flags),
    }


def assign_ticket(db: Session, actor: User | None, ticket_id: int, user_email: str) -> Ticket:
    require_role(actor, AGENTS, "atribuir chamado")
    ticket = get_ticket(db, ticket_id, lock=True)
    _refuse_if_closed(ticket)
    assignee = db.scalars(select(User).where(User.email == user_email.strip().lower())).one_or_none()
    if assignee is None or not assignee.active:
        raise InvalidInput("unknown_user", f"Usuário {user_email} não encontrado.")
    if assignee.role not in AGENTS:
        raise InvalidInput("assignee_not_agent", "Chamados só podem ser atribuídos a agentes.")
    before = _ticket_state(ticket)
    ticket.assignee_id = assignee.id
    audit.record(
        db, actor, "ticket.assigned", ticket, ticket_id=ticket.id, before=before, after=_ticket_state(ticket)
    )
    db.flush()
    return ticket


def step_blocker(db: Session, ticket: Ticket, key: StepKey) -> tuple[str, str] | None:
    """Why `key` cannot be completed now (code, pt-BR reason), or None. Role is checked apart."""
    if ticket.status == TicketStatus.CLOSED:
        return ("ticket_closed", f"O chamado {ticket.number} está encerrado e não aceita alterações.")
    step = ticket.step(key)
    if step.status == StepStatus.DONE:
        return ("step_already_done", f"A etapa \u201c{STEP_LABELS[key]}\u201d já foi concluída.")
    for earlier in STEP_ORDER[: STEP_ORDER.index(key)]:
        if ticket.step(earlier).status != StepStatus.DONE:
            return (
                "step_out_of_order",
                f"Conclua antes a etapa \u201c{STEP_LABELS[earlier]}\u201d.",
            )
    for guard in (*STEP_RULES[key].guards, *_extra_guards[key]):
        blocked = guard(db, ticket)
        if blocked is not None:
            return blocked
    return None


def complete_step(db: Session, actor: User | None, ticket_id: int, key: str, notes: str = "") -> TicketStep:
    try:
        step_key = StepKey(key)
    except ValueError:
        raise NotFound("unknown_step", f"Etapa desconhecida: {key}.") from None
    require_role(actor, STEP_RULES[step_key].roles, f"concluir a etapa \u201c{STEP_LABELS[step_key]}\u201d")
    ticket = get_ticket(db, ticket_id, lock=True)
    blocked = step_blocker(db, ticket, step_key)
    if blocked is not None:
        raise WorkflowError(*blocked)
    step = ticket.step(step_key)
    _mark_step_done(db, ticket, step, actor, notes=notes)
    if step_key == StepKey.DEV_HANDOFF:
        _create_dev_task(db, actor, ticket)
    elif step_key == StepKey.BILLING:
        _create_billing_request(db, actor, ticket)
    for listener in _step_listeners:
        listener(db, ticket, step, actor)
    db.flush()
    return step


def _mark_step_done(
    db: Session, ticket: Ticket, step: TicketStep, actor: User | None, *, notes: str, evidence: str = ""
) -> None:
    """Conditional update, so two concurrent completions produce exactly one."""
    before = _step_state(step)
    now = utcnow()
    result = db.execute(
        update(TicketStep)
        .where(TicketStep.id == step.id, TicketStep.status != StepStatus.DONE)
        .values(
            status=StepStatus.DONE,
            completed_by_id=actor.id if actor else None,
            completed_at=now,
            notes=(notes or "").strip(),
            evidence=evidence,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise WorkflowError(
            "step_already_done", f"A etapa \u201c{STEP_LABELS[StepKey(step.key)]}\u201d já foi concluída."
        )
    db.refresh(step)
    _advance_current_step(ticket)
    ticket.updated_at = now
    audit.record(
        db,
        actor,
        "step.completed",
        step,
        ticket_id=ticket.id,
        before=before,
        after={**_step_state(step), "key": step.key},
    )


# --- dev tasks -------------------------------------------------------------------------------


def _create_dev_task(db: Session, actor: User | None, ticket: Ticket) -> DevTask:
    task = DevTask(ticket=ticket, establishment_codes=list(ticket.customer.establishment_codes))
    db.add(task)
    db.flush()
    audit.record(db, actor, "dev_task.created", task, ticket_id=ticket.id, after=_task_state(task))
    return task


def _task_state(task: DevTask) -> dict[str, object]:
    return {
        "status": task.status,
        "assignee": task.assignee_id,
        "establishment_codes": list(task.establishment_codes),
    }


def get_dev_task(db: Session, task_id: int, *, lock: bool = True) -> DevTask:
    task = db.get(DevTask, task_id)
    if task is None:
        raise NotFound("dev_task_not_found", f"Tarefa de integração {task_id} não encontrada.")
    get_ticket(db, task.ticket_id, lock=lock)  # serialize on the ticket row
    db.refresh(task)
    _refuse_if_closed(task.ticket)
    return task


def take_dev_task(db: Session, actor: User | None, task_id: int) -> DevTask:
    require_role(actor, DEVELOPERS, "assumir tarefa de integração")
    task = get_dev_task(db, task_id)
    if task.status != DevTaskStatus.OPEN:
        raise WorkflowError("dev_task_already_taken", "Esta tarefa de integração já foi assumida.")
    before = _task_state(task)
    task.status = DevTaskStatus.TAKEN
    task.assignee_id = actor.id if actor else None
    task.taken_at = utcnow()
    audit.record(
        db, actor, "dev_task.taken", task, ticket_id=task.ticket_id, before=before, after=_task_state(task)
    )
    db.flush()
    return task


def enable_dev_task(
    db: Session, actor: User | None, task_id: int, establishment_codes: Iterable[str]
) -> DevTask:
    require_role(actor, DEVELOPERS, "habilitar integração")
    codes = clean_codes(establishment_codes)
    if not codes:
        raise InvalidInput("missing_establishment_code", "Informe ao menos um código de estabelecimento.")
    task = get_dev_task(db, task_id)
    if task.status not in (DevTaskStatus.TAKEN, DevTaskStatus.ENABLED):
        raise WorkflowError("dev_task_not_taken", "Assuma a tarefa antes de habilitar a integração.")
    _refuse_other_developer(task, actor)
    before = _task_state(task)
    task.status = DevTaskStatus.ENABLED
    task.establishment_codes = codes
    task.enabled_at = utcnow()
    customer = task.ticket.customer
    for code in codes:
        if code not in customer.establishment_codes:
            customer.establishments.append(EstablishmentCode(code=code))
    audit.record(
        db, actor, "dev_task.enabled", task, ticket_id=task.ticket_id, before=before, after=_task_state(task)
    )
    db.flush()
    return task


def return_dev_task(db: Session, actor: User | None, task_id: int) -> DevTask:
    require_role(actor, DEVELOPERS, "devolver tarefa de integração")
    task = get_dev_task(db, task_id)
    if task.status != DevTaskStatus.ENABLED:
        raise WorkflowError("dev_task_not_enabled", "Habilite a integração antes de devolver a tarefa.")
    _refuse_other_developer(task, actor)
    before = _task_state(task)
    task.status = DevTaskStatus.RETURNED
    task.returned_at = utcnow()
    audit.record(
        db, actor, "dev_task.returned", task, ticket_id=task.ticket_id, before=before, after=_task_state(task)
    )
    for listener in _task_returned_listeners:
        listener(db, task, actor)
    db.flush()
    return task


def _refuse_other_developer(task: DevTask, actor: User | None) -> None:
    if actor is not None and actor.role != Role.ADMIN and task.assignee_id != actor.id:
        raise WorkflowError("dev_task_taken_by_other", "Esta tarefa foi assumida por outro desenvolvedor.")


# --- billing and closing ---------------------------------------------------------------------


def _create_billing_request(db: Session, actor: User | None, ticket: Ticket) -> BillingRequest:
    request = BillingRequest(ticket=ticket, requested_by_id=actor.id if actor else None)
    db.add(request)
    db.flush()
    audit.record(
        db, actor, "billing.requested", request, ticket_id=ticket.id, after={"status": request.status}
    )
    return request


def register_billing(db: Session, actor: User | None, request_id: int, invoice_ref: str) -> BillingRequest:
    require_role(actor, FINANCE, "registrar cobrança")
    invoice_ref = (invoice_ref or "").strip()
    if not invoice_ref:
        raise InvalidInput("missing_invoice_ref", "Informe a referência da fatura.")
    request = db.get(BillingRequest, request_id)
    if request is None:
        raise NotFound("billing_request_not_found", f"Solicitação de cobrança {request_id} não encontrada.")
    get_ticket(db, request.ticket_id, lock=True)
    db.refresh(request)
    _refuse_if_closed(request.ticket)
    if request.status == BillingStatus.REGISTERED:
        raise WorkflowError("billing_already_registered", "Esta cobrança já foi registrada.")
    before = {"status": request.status, "invoice_ref": request.invoice_ref}
    request.status = BillingStatus.REGISTERED
    request.invoice_ref = invoice_ref
    request.registered_by_id = actor.id if actor else None
    request.registered_at = utcnow()
    audit.record(
        db,
        actor,
        "billing.registered",
        request,
        ticket_id=request.ticket_id,
        before=before,
        after={"status": request.status, "invoice_ref": invoice_ref},
    )
    db.flush()
    return request


def close_blocker(ticket: Ticket) -> tuple[str, str] | None:
    if ticket.status == TicketStatus.CLOSED:
        return ("ticket_closed", f"O chamado {ticket.number} já está encerrado.")
    for step in ticket.steps:
        if step.status != StepStatus.DONE:
            return (
                "steps_pending",
                f"Conclua a etapa \u201c{STEP_LABELS[StepKey(step.key)]}\u201d antes de encerrar.",
            )
    request = ticket.billing_request
    if request is None or request.status != BillingStatus.REGISTERED:
        return (
            "billing_not_registered",
            "O chamado só pode ser encerrado depois que o financeiro registrar a cobrança.",
        )
    return None


def close_ticket(db: Session, actor: User | None, ticket_id: int) -> Ticket:
    require_role(actor, AGENTS, "encerrar chamado")
    ticket = get_ticket(db, ticket_id, lock=True)
    blocked = close_blocker(ticket)
    if blocked is not None:
        raise WorkflowError(*blocked)
    before = _ticket_state(ticket)
    ticket.status = TicketStatus.CLOSED
    ticket.closed_at = utcnow()
    audit.record(
        db, actor, "ticket.closed", ticket, ticket_id=ticket.id, before=before, after=_ticket_state(ticket)
    )
    db.flush()
    return ticket


def set_ticket_flags(
    db: Session, actor: User | None, ticket_id: int, add: Iterable[str] = (), remove: Iterable[str] = ()
) -> Ticket:
    ticket = get_ticket(db, ticket_id, lock=True)
    _refuse_if_closed(ticket)
    before = _ticket_state(ticket)
    flags = [f for f in ticket.flags if f not in set(remove)]
    flags += [f for f in add if f not in flags]
    ticket.flags = flags
    audit.record(
        db,
        actor,
        "ticket.flags_changed",
        ticket,
        ticket_id=ticket.id,
        before=before,
        after=_ticket_state(ticket),
    )
    db.flush()
    return ticket
