"""Users, customers, tickets, their five steps, dev tasks, billing requests and the audit trail."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from onboarding.db import Base, utcnow
from onboarding.search_text import customer_search_name


class Role(StrEnum):
    AGENT = "agent"
    DEVELOPER = "developer"
    FINANCE = "finance"
    ADMIN = "admin"


class TicketStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class StepKey(StrEnum):
    CONTRACT = "contract"
    DEV_HANDOFF = "dev_handoff"
    VALIDATION = "validation"
    ORIENTATION = "orientation"
    BILLING = "billing"


STEP_ORDER: tuple[StepKey, ...] = tuple(StepKey)


class StepStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"


class DevTaskStatus(StrEnum):
    OPEN = "open"
    TAKEN = "taken"
    ENABLED = "enabled"
    RETURNED = "returned"


class BillingStatus(StrEnum):
    REQUESTED = "requested"
    REGISTERED = "registered"


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def display_name(self) -> str:
        return self.name or self.email


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class Customer(Base):
    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    trade_name: Mapped[str] = mapped_column(String(200), default="")
    cnpj: Mapped[str | None] = mapped_column(String(14), index=True)
    contact_name: Mapped[str] = mapped_column(String(200), default="")
    contact_email: Mapped[str] = mapped_column(String(254), default="")
    contact_phone: Mapped[str] = mapped_column(String(40), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Kept by `_fold_customer_names`; what the queue's search by name looks in.
    search_name: Mapped[str] = mapped_column(String(420), default="")

    establishments: Mapped[list[EstablishmentCode]] = relationship(
        back_populates="customer", order_by="EstablishmentCode.id", cascade="all, delete-orphan"
    )

    @property
    def establishment_codes(self) -> list[str]:
        return [e.code for e in self.establishments]


@event.listens_for(Customer, "before_insert")
@event.listens_for(Customer, "before_update")
def _fold_customer_names(_mapper: Any, _connection: Any, customer: Customer) -> None:
    customer.search_name = customer_search_name(customer.name, customer.trade_name)


class EstablishmentCode(Base):
    __tablename__ = "establishment_code"
    __table_args__ = (UniqueConstraint("customer_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    code: Mapped[str] = mapped_column(String(40), index=True)

    customer: Mapped[Customer] = relationship(back_populates="establishments")


class Ticket(Base):
    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_status_created_at", "status", "created_at"),
        # "my tickets", oldest first: the agent's own queue without scanning everyone's
        Index("ix_ticket_assignee_status_created_at", "assignee_id", "status", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(20), unique=True)
    subject: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(20), default=TicketStatus.OPEN)
    current_step: Mapped[str | None] = mapped_column(String(20), default=StepKey.CONTRACT, index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    flags: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]

    customer: Mapped[Customer] = relationship()
    assignee: Mapped[User | None] = relationship()
    steps: Mapped[list[TicketStep]] = relationship(
        back_populates="ticket", order_by="TicketStep.position", cascade="all, delete-orphan"
    )
    dev_task: Mapped[DevTask | None] = relationship(back_populates="ticket", uselist=False)
    billing_request: Mapped[BillingRequest | None] = relationship(back_populates="ticket", uselist=False)

    def step(self, key: str) -> TicketStep:
        return next(s for s in self.steps if s.key == key)


class TicketStep(Base):
    __tablename__ = "ticket_step"
    __table_args__ = (UniqueConstraint("ticket_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"))
    key: Mapped[str] = mapped_column(String(20))
    position: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default=StepStatus.PENDING)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    completed_at: Mapped[datetime | None]
    notes: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(String(300), default="")

    ticket: Mapped[Ticket] = relationship(back_populates="steps")
    completed_by: Mapped[User | None] = relationship()


class DevTask(Base):
    __tablename__ = "dev_task"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=DevTaskStatus.OPEN, index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    establishment_codes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    taken_at: Mapped[datetime | None]
    enabled_at: Mapped[datetime | None]
    returned_at: Mapped[datetime | None]

    ticket: Mapped[Ticket] = relationship(back_populates="dev_task")
    assignee: Mapped[User | None] = relationship()


class BillingRequest(Base):
    __tablename__ = "billing_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=BillingStatus.REQUESTED, index=True)
    invoice_ref: Mapped[str | None] = mapped_column(String(100))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    registered_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    registered_at: Mapped[datetime | None]

    ticket: Mapped[Ticket] = relationship(back_populates="billing_request")
    registered_by: Mapped[User | None] = relationship(foreign_keys=[registered_by_id])


class AuditEvent(Base):
    """Append-only: rows are only ever inserted (enforced in onboarding.audit)."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    action: Mapped[str] = mapped_column(String(60))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(60))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]

    actor: Mapped[User | None] = relationship()
