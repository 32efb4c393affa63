"""Demo data for `make run`: the four demo users and customers at every step. Idempotent."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from onboarding import auth, db, services
from onboarding.models import Customer, DevTask, Role, StepKey, User
from onboarding.subsystems import import_subsystems

DEMO_PASSWORD = "demo"
DEMO_USERS = (
    ("agente@example.com", Role.AGENT, "Ana Agente"),
    ("dev@example.com", Role.DEVELOPER, "Davi Desenvolvedor"),
    ("financeiro@example.com", Role.FINANCE, "Fernanda Financeiro"),
    ("admin@example.com", Role.ADMIN, "Alice Administradora"),
)

# (name, CNPJ, establishment codes, contact, steps already done)
DEMO_CUSTOMERS = (
    ("Drogaria Vila Serena Ltda", "52601815000120", ["1020304050"], "compras@vilaserena.example", 0),
    ("Farmácia Boa Saúde Ltda", "90830166000128", ["2030405060"], "financeiro@boasaude.example", 1),
    (
        "Drogaria Santa Luzia Eireli",
        "13186091000143",
        ["3040506070", "3040506071"],
        "ti@santaluzia.example",
        2,
    ),
    (
        "Farmácia Popular do Bairro Ltda",
        "39099603000128",
        ["4050607080"],
        "gerencia@popularbairro.example",
        3,
    ),
    ("Drogaria Nova Esperança S.A.", "08246281000179", ["5060708090"], "adm@novaesperanca.example", 4),
)


def seed() -> str:
    with db.session_scope() as session:
        users = _seed_users(session)
        opened = _seed_tickets(session, users)
    extra: dict[str, object] = {}
    for module in import_subsystems():
        seeder = getattr(module, "seed_demo", None)
        if seeder is not None:
            extra[module.__name__] = seeder()
    return json.dumps({"users": len(users), "tickets_opened": opened, **extra}, ensure_ascii=False)


def _seed_users(session: Session) -> dict[Role, User]:
    users: dict[Role, User] = {}
    for email, role, name in DEMO_USERS:
        user = session.scalars(select(User).where(User.email == email)).first()
        if user is None:
            user = auth.create_user(session, email, role, DEMO_PASSWORD, name=name, enforce_rules=False)
        users[role] = user
    return users


def _seed_tickets(session: Session, users: dict[Role, User]) -> int:
    agent, dev, finance = users[Role.AGENT], users[Role.DEVELOPER], users[Role.FINANCE]
    opened = 0
    for name, cnpj, codes, email, done in DEMO_CUSTOMERS:
        if session.scalars(select(Customer).where(Customer.cnpj == cnpj)).first() is not None:
            continue
        ticket = services.open_ticket(
            session, agent, customer_name=name, cnpj=cnpj, establishment_codes=codes, contact_email=email
        )
        services.assign_ticket(session, agent, ticket.id, agent.email)
        opened += 1
        for key in list(StepKey)[:done]:
            if key == StepKey.VALIDATION:
                task = session.scalars(select(DevTask).where(DevTask.ticket_id == ticket.id)).one()
                services.take_dev_task(session, dev, task.id)
                services.enable_dev_task(session, dev, task.id, codes)
                services.return_dev_task(session, dev, task.id)
            services.complete_step(session, agent, ticket.id, key, notes="Etapa concluída na demonstração.")
        if done == len(StepKey):
            request = ticket.billing_request
            assert request is not None
            services.register_billing(session, finance, request.id, "NF-2026-0001")
    return opened
