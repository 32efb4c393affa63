"""The server checks role and rules again on every POST: 403 for the role, 409 for a rule, 400 for
bad input, each with its pt-BR reason on the page and nothing changed in the database."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from onboarding import services
from tests.onboarding.helpers import VALID_CNPJ, advance_to, make_users, open_ticket
from tests.web.conftest import db_session, db_snapshot
from tests.web.helpers import login_as, post_form, text


@dataclass(frozen=True)
class Scene:
    fresh: int  # ticket at step 1
    handed_off: int  # ticket whose dev task is open
    task_open: int
    billing: int  # ticket whose billing request awaits finance
    request_id: int


@pytest.fixture
def scene(app: Flask) -> Scene:
    with db_session(app) as session:
        users = make_users(session)
        fresh = open_ticket(session, users["agent"])
        handed = open_ticket(session, users["agent"], cnpj="11.222.333/0001-81", customer_name="Farmácia B")
        advance_to(session, users, handed, 2)
        billed = open_ticket(session, users["agent"], cnpj="11.444.777/0001-61", customer_name="Drogaria C")
        advance_to(session, users, billed, 5)
        assert handed.dev_task and billed.billing_request
        return Scene(fresh.id, handed.id, handed.dev_task.id, billed.id, billed.billing_request.id)


ROLE_CASES = [
    ("developer", "step", "/tickets/{fresh}/steps/contract/complete", {"notes": "x"}),
    ("finance", "step", "/tickets/{fresh}/steps/contract/complete", {"notes": "x"}),
    ("developer", "assign", "/tickets/{fresh}/assign", {"user_email": "agent@test.example"}),
    ("developer", "close", "/tickets/{billing}/close", {}),
    ("finance", "take", "/dev-tasks/{task_open}/take", {}),
    ("agent", "take", "/dev-tasks/{task_open}/take", {}),
    ("finance", "enable", "/dev-tasks/{task_open}/enable", {"establishment_codes": "123"}),
    ("agent", "return", "/dev-tasks/{task_open}/return", {}),
    ("agent", "register", "/billing/{request_id}/register", {"invoice_ref": "NF-9"}),
    ("developer", "register", "/billing/{request_id}/register", {"invoice_ref": "NF-9"}),
]


def test_wrong_role_is_refused_with_403_and_nothing_changes(
    app: Flask, client: FlaskClient, scene: Scene
) -> None:
    before = db_snapshot(app)
    for role, what, url, data in ROLE_CASES:
        login_as(client, role)
        response = post_form(client, url.format(**scene.__dict__), data)
        assert response.status_code == 403, (role, what)
        assert "Seu perfil não permite esta ação" in text(response), (role, what)
        assert db_snapshot(app) == before, (role, what)
        post_form(client, "/logout")


def test_only_agents_open_tickets(app: Flask, client: FlaskClient, scene: Scene) -> None:
    login_as(client, "developer")
    assert client.get("/tickets/new").status_code == 403
    before = db_snapshot(app)
    form = {"customer_name": "Farmácia X", "cnpj": VALID_CNPJ, "establishment_codes": "1"}
    response = post_form(client, "/tickets/new", form)
    assert (
        response.status_code == 403
        and "Somente os perfis Administração ou Atendimento podem abrir chamados" in text(response)
    )
    assert db_snapshot(app) == before


RULE_CASES = [
    ("agent", "/tickets/{handed_off}/steps/validation/complete", {}, "depois que o desenvolvimento devolver"),
    ("agent", "/tickets/{fresh}/steps/orientation/complete", {}, "Conclua antes a etapa"),
    ("agent", "/tickets/{billing}/steps/contract/complete", {}, "já foi concluída"),
    ("agent", "/tickets/{billing}/close", {}, "depois que o financeiro registrar a cobrança"),
    ("developer", "/dev-tasks/{task_open}/enable", {"establishment_codes": "1"}, "Assuma a tarefa antes"),
    ("developer", "/dev-tasks/{task_open}/return", {}, "Habilite a integração antes"),
]


def test_broken_rule_is_refused_with_409_and_nothing_changes(
    app: Flask, client: FlaskClient, scene: Scene
) -> None:
    before = db_snapshot(app)
    for role, url, data, reason in RULE_CASES:
        login_as(client, role)
        response = post_form(client, url.format(**scene.__dict__), {"notes": "tentativa", **data})
        assert response.status_code == 409, url
        assert reason in text(response), url
        assert db_snapshot(app) == before, url
        post_form(client, "/logout")


def test_task_taken_by_another_developer(app: Flask, client: FlaskClient, scene: Scene) -> None:
    login_as(client, "developer")
    assert post_form(client, f"/dev-tasks/{scene.task_open}/take").status_code == 303
    post_form(client, "/logout")
    login_as(client, "developer2")
    before = db_snapshot(app)
    response = post_form(client, f"/dev-tasks/{scene.task_open}/enable", {"establishment_codes": "9"})
    assert response.status_code == 409 and "assumida por outro desenvolvedor" in text(response)
    assert db_snapshot(app) == before


def test_bad_input_is_refused_with_400_and_nothing_changes(
    app: Flask, client: FlaskClient, scene: Scene
) -> None:
    login_as(client, "finance")
    before = db_snapshot(app)
    response = post_form(client, f"/billing/{scene.request_id}/register", {"invoice_ref": "  "})
    assert response.status_code == 400 and "Informe a referência da fatura." in text(response)
    response = post_form(client, f"/billing/{scene.request_id}/register", {"invoice_ref": "N" * 101})
    assert response.status_code == 400 and "no máximo 100 caracteres" in text(response)
    assert db_snapshot(app) == before


def test_pages_offer_only_what_the_role_may_do(client: FlaskClient, scene: Scene) -> None:
    login_as(client, "developer")
    page = text(client.get(f"/tickets/{scene.fresh}"))
    assert "Concluir etapa" not in page and 'action="/tickets/1/assign"' not in page
    assert (
        "Somente os perfis Administração ou Atendimento podem concluir esta etapa; "
        "seu perfil é Desenvolvimento." in page
    )
    assert client.get("/billing").status_code == 403
    post_form(client, "/logout")

    login_as(client, "agent")
    page = text(client.get(f"/tickets/{scene.fresh}"))
    assert "Concluir etapa" in page and "Atribuir" in page
    assert client.get("/dev-tasks").status_code == 403
    post_form(client, "/logout")

    login_as(client, "finance")
    billing = text(client.get("/billing"))
    assert f'action="/billing/{scene.request_id}/register' in billing
    assert "Concluir etapa" not in text(client.get(f"/tickets/{scene.billing}"))


def test_successful_actions_change_state(app: Flask, client: FlaskClient, scene: Scene) -> None:
    login_as(client, "developer")
    for action, data in (("take", {}), ("enable", {"establishment_codes": "111, 222"}), ("return", {})):
        response = post_form(client, f"/dev-tasks/{scene.task_open}/{action}", data)
        assert response.status_code == 303, text(response)
    post_form(client, "/logout")
    login_as(client, "finance")
    assert (
        post_form(client, f"/billing/{scene.request_id}/register", {"invoice_ref": "NF-7"}).status_code == 303
    )
    with db_session(app) as session:
        handed = services.get_ticket(session, scene.handed_off)
        assert handed.dev_task is not None and handed.dev_task.status == "returned"
        assert handed.dev_task.establishment_codes == ["111", "222"]
        billed = services.get_ticket(session, scene.billing)
        assert billed.billing_request is not None and billed.billing_request.invoice_ref == "NF-7"
