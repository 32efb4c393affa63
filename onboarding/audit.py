"""The append-only audit trail: every state change writes who, what, when, before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from onboarding.models import AuditEvent, User


def record(
    db: Session,
    actor: User | None,
    action: str,
    entity: Any,
    *,
    ticket_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    audit = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        action=action,
        entity_type=type(entity).__tablename__ if hasattr(entity, "__tablename__") else str(entity),
        entity_id=str(getattr(entity, "id", "")),
        ticket_id=ticket_id,
        before=before,
        after=after,
    )
    db.add(audit)
    return audit


class AuditIsAppendOnly(RuntimeError):
    pass


@event.listens_for(Session, "before_flush")
def _refuse_audit_rewrites(db: Session, _context: Any, _instances: Any) -> None:
    for obj in list(db.dirty) + list(db.deleted):
        if isinstance(obj, AuditEvent):
            raise AuditIsAppendOnly("audit events are never changed or deleted")
