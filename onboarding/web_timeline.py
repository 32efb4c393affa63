"""The ticket's timeline: its audit trail in pt-BR, merged with entries other packages contribute."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onboarding.models import AuditEvent, StepKey, Ticket, User
from onboarding.services import STEP_LABELS
from onboarding.web_hooks import TimelineEntry, contributed_timeline
from onboarding.work_queues import users_by_id

FLAG_LABELS = {
    "incomplete_data": "Dados incompletos",
    "missing_cnpj": "CNPJ ausente",
    "invalid_cnpj": "CNPJ inválido",
    "missing_establishment_code": "Código de estabelecimento ausente",
}


def flag_label(flag: str) -> str:
    return FLAG_LABELS.get(flag, flag.replace("_", " "))


def step_label(key: str | None) -> str:
    if key is None:
        return "Concluído"
    try:
        return STEP_LABELS[StepKey(key)]
    except ValueError:
        return key


def _describe(event: AuditEvent, users: dict[int, User]) -> tuple[str, str]:
    """(title, detail) of one audit event."""
    after: dict[str, Any] = event.after or {}
    action = event.action
    if action == "ticket.opened":
        return "Chamado aberto", ""
    if action == "step.completed":
        detail = after.get("notes") or ""
        return f"Etapa \u201c{step_label(after.get('key'))}\u201d concluída", detail
    if action == "ticket.assigned":
        user = users.get(after.get("assignee") or 0)
        return f"Atribuído a {user.display_name if user else 'ninguém'}", ""
    if action == "dev_task.created":
        return "Integração encaminhada ao desenvolvimento", _codes(after)
    if action == "dev_task.taken":
        return "Tarefa de integração assumida", ""
    if action == "dev_task.enabled":
        return "Integração habilitada", _codes(after)
    if action == "dev_task.returned":
        return "Integração devolvida ao atendimento", ""
    if action == "billing.requested":
        return "Cobrança solicitada ao financeiro", ""
    if action == "billing.registered":
        return "Cobrança registrada pelo financeiro", f"Fatura: {after.get('invoice_ref', '')}"
    if action == "ticket.closed":
        return "Chamado encerrado", ""
    if action == "ticket.flags_changed":
        flags = ", ".join(flag_label(f) for f in after.get("flags") or []) or "nenhum"
        return "Alertas do chamado alterados", f"Alertas: {flags}"
    return action, ""


def _codes(after: dict[str, Any]) -> str:
    codes = after.get("establishment_codes") or []
    return f"Estabelecimentos: {', '.join(codes)}" if codes else ""


def audit_timeline(db: Session, ticket: Ticket) -> list[TimelineEntry]:
    events = list(
        db.scalars(
            select(AuditEvent).where(AuditEvent.ticket_id == ticket.id).order_by(AuditEvent.at, AuditEvent.id)
        )
    )
    ids: set[int | None] = {e.actor_id for e in events}
    ids |= {(e.after or {}).get("assignee") for e in events if e.action == "ticket.assigned"}
    users = users_by_id(db, ids)
    entries = []
    for event in events:
        title, detail = _describe(event, users)
        who = users.get(event.actor_id or 0)
        entries.append(
            TimelineEntry(
                event.at,
                "audit",
                {"title": title, "body": detail, "actor": who.display_name if who else "Sistema"},
            )
        )
    return entries


def ticket_timeline(db: Session, ticket: Ticket) -> list[TimelineEntry]:
    """Oldest first; audit events and contributed entries (e.g. mail) interleaved by time."""
    entries = audit_timeline(db, ticket) + contributed_timeline(db, ticket)
    return sorted(entries, key=lambda e: e.when)
