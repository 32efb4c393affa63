"""Every sample mail in samples/, with the extraction and classification it must produce.

samples/README.md documents the same expectations for people.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from mail_ingest.classify import (
    auto_reply_kind,
    bounce_original_message_id,
    is_integrator_sender,
    ticket_numbers_in_subject,
)
from mail_ingest.extract import extract_customer, looks_like_onboarding
from tests.mail_ingest.support import INTEGRATOR_DOMAINS, SAMPLES, load_sample, sample_names

BRT = timezone(timedelta(hours=-3))
NOTHING = {
    "company_name": None,
    "trade_name": None,
    "cnpj": None,
    "invalid_cnpj": None,
    "establishment_codes": (),
    "contact_name": None,
    "contact_email": None,
    "contact_phone": None,
    "missing": ("cnpj", "establishment_codes", "company_name", "contact"),
}

EXPECTED: dict[str, dict[str, Any]] = {
    "01-onboarding-texto-utf8.eml": {
        "integrator": True,
        "onboarding": True,
        "kind": None,
        "subject": "Novo cliente E-extrato – Drogaria Bom Jesus Ltda",
        "customer": {
            "company_name": "Drogaria Bom Jesus Ltda",
            "trade_name": "Drogaria Bom Jesus",
            "cnpj": "34521876000103",
            "invalid_cnpj": None,
            "establishment_codes": ("1048293751",),
            "contact_name": "Maria Aparecida Souza",
            "contact_email": "maria.souza@drogariabomjesus.com.br",
            "contact_phone": "(19) 3254-8810",
            "missing": (),
        },
    },
    "02-onboarding-html-tabela-rotulos.eml": {
        "integrator": True,
        "onboarding": True,
        "kind": None,
        "subject": "Contratação E-extrato concluída: Farmácia Santa Luzia",
        "customer": {
            "company_name": "Farmácia Santa Luzia Ltda",
            "trade_name": "Santa Luzia",
            "cnpj": "07193542000177",
            "invalid_cnpj": None,
            "establishment_codes": ("2093847561",),
            "contact_name": "Antônio Carlos Ribeiro",
            "contact_email": "antonio@farmaciasantaluzia.com.br",
            "contact_phone": "(31) 99812-4477",
            "missing": (),
        },
    },
    "03-onboarding-html-varios-estabelecimentos.eml": {
        "integrator": True,
        "onboarding": True,
        "kind": None,
        "subject": "Integração E-extrato – Rede Farmavida (3 lojas)",
        "customer": {
            "company_name": "Rede Farmavida Comércio de Medicamentos Ltda",
            "trade_name": None,
            "cnpj": "41382657000148",
            "invalid_cnpj": None,
            "establishment_codes": ("1122334455", "1122334456", "1122334457"),
            "contact_name": "Patrícia Nogueira",
            "contact_email": "patricia.nogueira@farmavida.com.br",
            "contact_phone": "(62) 3091-2200",
            "missing": (),
        },
    },
    "04-onboarding-iso-8859-1-qp.eml": {
        "integrator": True,
        "onboarding": True,
        "kind": None,
        "subject": "Integração E-extrato - Drogaria São Benedito",
        "customer": {
            "company_name": "Drogaria São Benedito Ltda",
            "trade_name": "Drogaria São Benedito",
            "cnpj": "28461093000170",
            "invalid_cnpj": None,
            "establishment_codes": ("3045127789", "3045127790"),
            "contact_name": "João Batista Ferreira",
            "contact_email": "joao.ferreira@drogariasaobenedito.com.br",
            "contact_phone": "(35) 3622-1408",
            "missing": (),
        },
    },
    "05-onboarding-windows-1252-base64.eml": {
        "integrator": True,
        "onboarding": True,
        "kind": None,
        "subject": "Contratação E-extrato – Farmácia Popular do Cerrado",
        "customer": {
            "company_name": "Farmácia Popular do Cerrado Ltda",
            "trade_name": None,
            "cnpj": "19057438000134",
            "invalid_cnpj": None,
            "establishment_codes": ("0093817264", "0093817265"),
            "contact_name": "Luciana Martins",
            "contact_email": "luciana@popularcerrado.com.br",
            "contact_phone": "(61) 3344-9021",
            "missing": (),
        },
    },
    "06-onboarding-anexo-csv.eml": {
        "integrator": True,
        "onboarding": True,
        "kind": None,
        "subject": "Novo cliente E-extrato – dados em anexo",
        "customer": {
            "company_name": "Drogaria Nossa Senhora Aparecida Ltda",
            "trade_name": "Drogaria Aparecida",
            "cnpj": "22695314000199",
            "invalid_cnpj": None,
            "establishment_codes": ("5566778801", "5566778802"),
            "contact_name": "Sebastião Pereira",
            "contact_email": "sebastiao@drogariaaparecida.com.br",
            "contact_phone": "(12) 3105-7730",
            "missing": (),
        },
    },
    "07-onboarding-encaminhado.eml": {
        "integrator": True,
        "onboarding": True,
        "kind": None,
        "subject": "ENC: Adesão E-extrato confirmada - Farmácia Vale Verde",
        "customer": {
            "company_name": "Farmácia Vale Verde Ltda",
            "trade_name": None,
            "cnpj": "30571892000141",
            "invalid_cnpj": None,
            "establishment_codes": ("7788990011",),
            "contact_name": "Renata Oliveira",
            "contact_email": "renata@farmaciavaleverde.com.br",
            "contact_phone": "(47) 3521-6090",
            "missing": (),
        },
    },
    "08-onboarding-sem-cnpj.eml": {
        "integrator": True,
        "onboarding": True,
        "kind": None,
        "subject": "Novo cliente E-extrato – Drogaria Central de Itajubá",
        "customer": {
            "company_name": "Drogaria Central de Itajubá Ltda",
            "trade_name": None,
            "cnpj": None,
            "invalid_cnpj": None,
            "establishment_codes": ("6655443322",),
            "contact_name": "Paulo Roberto Mendes",
            "contact_email": "paulo@drogariacentralitajuba.com.br",
            "contact_phone": None,
            "missing": ("cnpj",),
        },
    },
    "09-onboarding-cnpj-invalido.eml": {
        "integrator": True,
        "onboarding": True,
        "kind": None,
        "subject": "Contratação E-extrato: Farmácia Bem-Estar",
        "customer": {
            "company_name": "Farmácia Bem-Estar Ltda",
            "trade_name": None,
            "cnpj": None,
            "invalid_cnpj": "16.304.925/0001-67",
            "establishment_codes": ("4433221100",),
            "contact_name": "Helena Duarte",
            "contact_email": "helena@farmaciabemestar.com.br",
            "contact_phone": "(81) 3421-5566",
            "missing": ("cnpj",),
        },
    },
    "10-spoof-nome-boavista-gmail.eml": {
        "integrator": False,
        "onboarding": True,
        "kind": None,
        "subject": "URGENTE: Novo cliente E-extrato – integração imediata",
        "customer": {
            "company_name": "Farmácia Três Irmãos Ltda",
            "trade_name": None,
            "cnpj": "50273461000106",
            "invalid_cnpj": None,
            "establishment_codes": ("9988776655",),
            "contact_name": None,
            "contact_email": "financeiro.tresirmaos@gmail.com",
            "contact_phone": None,
            "missing": (),
        },
    },
    "11-cliente-duvida.eml": {
        "integrator": False,
        "onboarding": False,
        "kind": None,
        "subject": "Dúvida: relatório de fechamento de caixa com data errada",
        "customer": NOTHING,
    },
    "12-resposta-automatica.eml": {
        "integrator": False,
        "onboarding": False,
        "kind": "auto_reply",
        "subject": "Resposta automática: [#EX-000001] Integração E-extrato – Drogaria Bom Jesus",
        "tickets": ["EX-000001"],
        "in_reply_to": "<ex-000001.a1b2c3d4@vetorsolucoes.com.br>",
        "customer": NOTHING,
    },
    "13-bounce-dsn.eml": {
        "integrator": False,
        "onboarding": False,
        "kind": "bounce",
        "bounced": "<ex-000002.3c9d1f20@vetorsolucoes.com.br>",
        "subject": "Undelivered Mail Returned to Sender",
        "customer": NOTHING,
    },
    "14-resposta-in-reply-to.eml": {
        "integrator": True,
        "onboarding": False,
        "kind": None,
        "subject": "RES: [#EX-000008] Dados incompletos – Drogaria Central de Itajubá",
        "tickets": ["EX-000008"],
        "in_reply_to": "<ex-000008.b41e2d7a@vetorsolucoes.com.br>",
        "customer": {
            **NOTHING,
            "cnpj": "11837456000127",
            "establishment_codes": ("6655443322",),
            "missing": ("company_name", "contact"),
        },
    },
    "15-onboarding-charset-errado.eml": {
        "integrator": True,
        "onboarding": True,
        "kind": None,
        "subject": "Integração E-extrato - Drogaria Preço Justo",
        "customer": {
            "company_name": "Drogaria Preço Justo Ltda",
            "trade_name": "Preço Justo",
            "cnpj": "27384916000149",
            "invalid_cnpj": None,
            "establishment_codes": ("8877665544", "8877665545"),
            "contact_name": "Adriana Gonçalves",
            "contact_email": "adriana@precojusto.com.br",
            "contact_phone": "(11) 4002-7788",
            "missing": (),
        },
    },
    "16-onboarding-alternativo-subdominio.eml": {
        "integrator": True,
        "onboarding": True,
        "kind": None,
        "subject": "[E-extrato] Novo cliente: Farmácia Flor de Lis",
        "customer": {
            "company_name": "Farmácia Flor de Lis Ltda",
            "trade_name": None,
            "cnpj": "09371528000141",
            "invalid_cnpj": None,
            "establishment_codes": ("3216549870",),
            "contact_name": None,
            "contact_email": "contato@farmaciaflordelis.com.br",
            "contact_phone": "+55 21 98877-6655",
            "missing": (),
        },
    },
}


def test_every_sample_has_expectations() -> None:
    assert sorted(EXPECTED) == sample_names()
    assert len(EXPECTED) >= 14


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(name: str) -> None:
    expected = EXPECTED[name]
    parsed = load_sample(name)

    assert parsed.subject == expected["subject"]
    assert "atendimento@vetorsolucoes.com.br" in parsed.to
    assert parsed.message_id is not None
    assert parsed.date is not None and parsed.date.tzinfo is not None
    assert is_integrator_sender(parsed, INTEGRATOR_DOMAINS) is expected["integrator"]
    assert looks_like_onboarding(parsed) is expected["onboarding"]
    assert auto_reply_kind(parsed) == expected["kind"]
    assert ticket_numbers_in_subject(parsed.subject) == expected.get("tickets", [])
    assert parsed.in_reply_to == expected.get("in_reply_to")
    if expected["kind"] == "bounce":
        assert bounce_original_message_id(parsed) == expected["bounced"]

    customer = extract_customer(parsed)
    assert {key: getattr(customer, key) for key in NOTHING} == expected["customer"]


def test_utf8_plain_headers() -> None:
    parsed = load_sample("01-onboarding-texto-utf8.eml")
    assert parsed.message_id == "<20261116124210.5F2A1C0039@mx.boavistatecnologia.com.br>"
    assert parsed.from_name == "Juliana Prado"
    assert parsed.from_address == "juliana.prado@boavistatecnologia.com.br"
    assert parsed.date == datetime(2026, 11, 16, 9, 42, 10, tzinfo=BRT)
    assert parsed.html_safe is None
    assert "Olá, equipe Vetor Soluções!" in parsed.text


def test_html_only_sample_gets_text_tables_and_sanitized_html() -> None:
    parsed = load_sample("02-onboarding-html-tabela-rotulos.eml")
    assert parsed.from_name == "Boavista Tecnologia – Cadastro"
    assert "concluiu a contratação do E-extrato" in parsed.text
    assert parsed.tables[0][0] == ("Razão Social", "Farmácia Santa Luzia Ltda")
    assert len(parsed.tables[0]) == 7
    assert parsed.html_safe is not None
    assert "<style" not in parsed.html_safe
    assert "Farmácia Santa Luzia Ltda" in parsed.html_safe


def test_header_row_table_and_script_removed() -> None:
    parsed = load_sample("03-onboarding-html-varios-estabelecimentos.eml")
    assert parsed.tables == (
        (
            ("Loja", "CNPJ", "Código do estabelecimento", "Adquirente"),
            ("Matriz – Setor Bueno", "41.382.657/0001-48", "1122334455", "Cielo"),
            ("Filial Centro", "41.382.657/0002-29", "1122334456", "Cielo"),
            ("Filial Jardim Goiás", "41.382.657/0003-00", "1122334457", "Cielo"),
        ),
    )
    assert parsed.cc == ("implantacao@boavistatecnologia.com.br",)
    assert parsed.html_safe is not None
    assert "<script" not in parsed.html_safe
    assert "document.cookie" not in parsed.html_safe


def test_csv_attachment_name_decoded_from_rfc2231_windows_1252() -> None:
    parsed = load_sample("06-onboarding-anexo-csv.eml")
    (attachment,) = parsed.attachments
    assert attachment.filename == "Relação de lojas - Aparecida.csv"
    assert attachment.content_type == "text/csv"
    assert attachment.payload.startswith("Razão Social;".encode("cp1252"))
    assert len(attachment.sha256) == 64


def test_forwarded_message_is_parsed_and_its_data_used() -> None:
    parsed = load_sample("07-onboarding-encaminhado.eml")
    assert parsed.attachments == ()
    (inner,) = parsed.forwarded
    assert inner.message_id == "<adesao-778899-valeverde@boavistatecnologia.com.br>"
    assert inner.from_address == "comercial@boavistatecnologia.com.br"
    assert "CNPJ: 30.571.892/0001-41" in inner.text
    assert [m.message_id for m in parsed.walk()] == [parsed.message_id, inner.message_id]


def test_display_name_spoof_keeps_real_address() -> None:
    parsed = load_sample("10-spoof-nome-boavista-gmail.eml")
    assert parsed.from_name == "Boavista Tecnologia"
    assert parsed.from_address == "boavista.tecnologia.cadastro@gmail.com"
    assert parsed.reply_to == "boavista.tecnologia.cadastro@gmail.com"
    assert parsed.date == datetime(2026, 11, 26, 23, 51, 6, tzinfo=UTC)


def test_multipart_alternative_prefers_plain_text() -> None:
    parsed = load_sample("11-cliente-duvida.eml")
    assert parsed.text.startswith("Boa tarde,\n\nDesde ontem o relatório")
    assert "<div>" not in parsed.text
    assert parsed.html_safe is not None and "<div>" in parsed.html_safe


def test_auto_reply_headers_are_kept() -> None:
    parsed = load_sample("12-resposta-automatica.eml")
    assert parsed.headers["auto-submitted"] == "auto-replied"
    assert parsed.headers["return-path"] == "<>"
    assert parsed.references == ("<ex-000001.a1b2c3d4@vetorsolucoes.com.br>",)


def test_bounce_report_parts() -> None:
    parsed = load_sample("13-bounce-dsn.eml")
    assert parsed.content_type == "multipart/report"
    assert parsed.report_type == "delivery-status"
    assert parsed.from_address == "mailer-daemon@mx.vetorsolucoes.com.br"
    assert parsed.delivery_status is not None
    assert "Final-Recipient: rfc822; financeiro@farmaciasantaluzia.com.br" in parsed.delivery_status
    (headers,) = parsed.attached_headers
    assert headers["subject"] == "[#EX-000002] Integração E-extrato em andamento"


def test_reply_threading_headers() -> None:
    parsed = load_sample("14-resposta-in-reply-to.eml")
    assert parsed.references == (
        "<20261125161809.itajuba.0042@boavistatecnologia.com.br>",
        "<ex-000008.b41e2d7a@vetorsolucoes.com.br>",
    )


def test_us_ascii_label_on_latin1_bytes() -> None:
    parsed = load_sample("15-onboarding-charset-errado.eml")
    assert parsed.from_name == "Sérgio Cunha"
    assert parsed.subject == "Integração E-extrato - Drogaria Preço Justo"  # raw 8-bit header
    assert "Razão Social\tDrogaria Preço Justo Ltda" in parsed.text


def test_subdomain_sender_and_sanitized_links() -> None:
    parsed = load_sample("16-onboarding-alternativo-subdominio.eml")
    assert parsed.from_address == "notificacoes@mail.boavistatecnologia.com.br"
    assert parsed.html_safe is not None
    assert "javascript:" not in parsed.html_safe
    assert "onclick" not in parsed.html_safe
    assert parsed.tables[0][1] == ("CNPJ/MF:", "09.371.528/0001-41")


def test_readme_lists_every_sample() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for name in sample_names():
        assert f"`{name}`" in readme
