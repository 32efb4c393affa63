"""extract_customer and looks_like_onboarding on text lines, tables and CSV/TXT attachments."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mail_ingest.extract import CustomerData, extract_customer, looks_like_onboarding
from mail_ingest.parse import ParsedMessage, parse_message
from tests.mail_ingest.support import mail

VALID = "34.521.876/0001-03"
VALID_DIGITS = "34521876000103"
HEAD = "From: Juliana <juliana@boavistatecnologia.com.br>\nSubject: Novo cliente E-extrato"


def parsed_text(text: str, subject: str = "Novo cliente E-extrato") -> ParsedMessage:
    headers = (
        f"From: j@boavistatecnologia.com.br\nSubject: {subject}\nContent-Type: text/plain; charset=utf-8"
    )
    return parse_message(mail(headers, text))


def from_text(text: str) -> CustomerData:
    return extract_customer(parsed_text(text))


def from_html(html: str) -> CustomerData:
    return extract_customer(parse_message(mail(f"{HEAD}\nContent-Type: text/html; charset=utf-8", html)))


def with_attachment(
    content: bytes, filename: str = "dados.csv", content_type: str = "text/csv"
) -> ParsedMessage:
    body = (
        "--B\nContent-Type: text/plain; charset=utf-8\n\nSegue a planilha do novo cliente.\n"
        f'--B\nContent-Type: {content_type}\nContent-Disposition: attachment; filename="{filename}"\n'
        "Content-Transfer-Encoding: base64\n\n" + base64.b64encode(content).decode() + "\n--B--\n"
    )
    return parse_message(mail(f'{HEAD}\nContent-Type: multipart/mixed; boundary="B"', body))


# -- labels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Razão Social: Drogaria Bom Jesus Ltda",
        "Razao social - Drogaria Bom Jesus Ltda",
        "RAZÃO SOCIAL = Drogaria Bom Jesus Ltda",
        "razão social:\tDrogaria Bom Jesus Ltda",
        "Razão Social\tDrogaria Bom Jesus Ltda",
        "Razão social do cliente: Drogaria Bom Jesus Ltda",
        "Nome empresarial: Drogaria Bom Jesus Ltda",
        "Empresa: Drogaria Bom Jesus Ltda",
        "Cliente: Drogaria Bom Jesus Ltda",
        "  * Razão Social:  Drogaria Bom Jesus Ltda  ",
        "> Razão Social: Drogaria Bom Jesus Ltda",
        "> > Razão Social: Drogaria Bom Jesus Ltda.",
    ],
)
def test_company_name_labels(line: str) -> None:
    assert from_text(line).company_name == "Drogaria Bom Jesus Ltda"


@pytest.mark.parametrize(
    "line",
    [
        "Nome Fantasia: Bom Jesus",
        "Nome fantasia - Bom Jesus",
        "NOME FANTASIA = Bom Jesus",
        "Fantasia: Bom Jesus",
    ],
)
def test_trade_name_labels(line: str) -> None:
    assert from_text(line).trade_name == "Bom Jesus"


@pytest.mark.parametrize(
    "line",
    [
        f"CNPJ: {VALID}",
        f"CNPJ - {VALID}",
        f"CNPJ = {VALID}",
        f"CNPJ\t{VALID}",
        f"cnpj:{VALID}",
        f"C.N.P.J.: {VALID}",
        f"CNPJ/MF: {VALID}",
        f"CNPJ nº {VALID}",
        f"CNPJ n°: {VALID}",
        f"CNPJ (matriz): {VALID}",
        f"CNPJ do cliente: {VALID}",
        f"CNPJ {VALID}",
        f"CNPJ: {VALID_DIGITS}",
        "CNPJ: 34 521 876 0001 03",
        "CNPJ: 34521876/0001-03",
    ],
)
def test_cnpj_labels_and_formats(line: str) -> None:
    customer = from_text(line)
    assert customer.cnpj == VALID_DIGITS
    assert customer.invalid_cnpj is None


@pytest.mark.parametrize(
    ("line", "raw"),
    [
        ("CNPJ: 34.521.876/0001-04", "34.521.876/0001-04"),
        ("CNPJ: 34.521.876/0001-0", "34.521.876/0001-0"),
        ("CNPJ: 00.000.000/0000-00", "00.000.000/0000-00"),
        ("CNPJ: 123.456.789-09", "123.456.789-09"),  # a CPF where the CNPJ belongs
    ],
)
def test_invalid_cnpj_kept_as_written(line: str, raw: str) -> None:
    customer = from_text(line)
    assert customer.cnpj is None
    assert customer.invalid_cnpj == raw
    assert "cnpj" in customer.missing


def test_cnpj_without_digits_is_missing_not_invalid() -> None:
    customer = from_text("CNPJ: será enviado depois")
    assert customer.cnpj is None
    assert customer.invalid_cnpj is None


def test_valid_cnpj_wins_over_an_earlier_invalid_one() -> None:
    customer = from_text(f"CNPJ: 34.521.876/0001-04\nCNPJ correto: {VALID}")
    assert customer.cnpj == VALID_DIGITS
    assert customer.invalid_cnpj is None


def test_alphanumeric_cnpj_from_july_2026() -> None:
    assert from_text("CNPJ: 12.ABC.345/01DE-35").cnpj == "12ABC34501DE35"
    assert from_text("CNPJ: 12.abc.345/01de-35").cnpj == "12ABC34501DE35"


def test_cnpj_value_on_the_next_line() -> None:
    assert from_text(f"CNPJ:\n\n{VALID}").cnpj == VALID_DIGITS


@pytest.mark.parametrize(
    "label",
    [
        "Código do estabelecimento",
        "Codigo do Estabelecimento",
        "CÓDIGO DO ESTABELECIMENTO",
        "Cód. Estabelecimento",
        "Cod estabelecimento",
        "Codigo Estabelecimento",
        "Códigos de estabelecimento",
        "Códigos dos estabelecimentos",
        "Código EC",
        "Nº do estabelecimento",
        "Número do EC",
        "EC",
        "ECs",
        "EC(s)",
        "Estabelecimento",
        "Estabelecimentos",
        "Estabelecimento comercial",
    ],
)
@pytest.mark.parametrize("separator", [": ", " - ", " = ", "\t"])
def test_establishment_labels(label: str, separator: str) -> None:
    assert from_text(f"{label}{separator}1020304050").establishment_codes == ("1020304050",)


@pytest.mark.parametrize(
    "value",
    [
        "1111111, 2222222, 3333333",
        "1111111; 2222222; 3333333",
        "1111111 / 2222222 / 3333333",
        "1111111, 2222222 e 3333333",
        "1111111 | 2222222 | 3333333",
        "1111111 (Matriz), 2222222 (Filial Centro) e 3333333 (Filial Jardim)",
        "1111111 2222222 3333333 1111111",
    ],
)
def test_several_codes_in_one_value(value: str) -> None:
    assert from_text(f"ECs: {value}").establishment_codes == ("1111111", "2222222", "3333333")


def test_codes_on_several_lines() -> None:
    text = "Códigos de estabelecimento:\n1111111\n- 2222222\n* 3333333, 4444444\n\nObrigado.\n5555555"
    assert from_text(text).establishment_codes == ("1111111", "2222222", "3333333", "4444444")


def test_cnpjs_and_dates_in_a_code_value_are_not_codes() -> None:
    customer = from_text(f"EC: 1020304050 (CNPJ {VALID}), ativo desde 01/11/2026")
    assert customer.establishment_codes == ("1020304050",)


def test_codes_from_several_sources_are_ordered_and_unique() -> None:
    text = "EC: 2222222\nCódigo do estabelecimento: 1111111, 2222222\nEC - 3333333"
    assert from_text(text).establishment_codes == ("2222222", "1111111", "3333333")


@pytest.mark.parametrize(
    "text",
    [
        "Cliente - solicitou a integração ontem",
        "Estabelecimento no shopping 1234, perto da praça",
        "O cliente informou o EC por telefone 12345678",
        "Empresa de ônibus atrasou",
        "Economia de 12345 reais",
        "Contato foi feito ontem.",
    ],
)
def test_prose_is_not_mistaken_for_labels(text: str) -> None:
    customer = from_text(text)
    assert customer.company_name is None
    assert customer.establishment_codes == ()
    assert customer.contact_name is None


@pytest.mark.parametrize(
    ("line", "name", "email", "phone"),
    [
        ("Contato: Maria Souza", "Maria Souza", None, None),
        ("Responsável: Maria Souza", "Maria Souza", None, None),
        ("Nome do responsável - Maria Souza", "Maria Souza", None, None),
        ("Pessoa de contato = Maria Souza", "Maria Souza", None, None),
        (
            "Contato: Maria Souza - maria@bomjesus.com.br - (19) 3254-8810",
            "Maria Souza",
            "maria@bomjesus.com.br",
            "(19) 3254-8810",
        ),
        ("Contato: Maria Souza <Maria@BomJesus.com.br>", "Maria Souza", "maria@bomjesus.com.br", None),
        ("Contato: maria@bomjesus.com.br", None, "maria@bomjesus.com.br", None),
        ("E-mail: maria@bomjesus.com.br", None, "maria@bomjesus.com.br", None),
        ("Email - maria@bomjesus.com.br", None, "maria@bomjesus.com.br", None),
        ("E-mail do responsável: maria@bomjesus.com.br", None, "maria@bomjesus.com.br", None),
        ("e-mail = <maria@bomjesus.com.br>", None, "maria@bomjesus.com.br", None),
        ("Telefone: (19) 3254-8810", None, None, "(19) 3254-8810"),
        ("Telefone (19) 3254-8810", None, None, "(19) 3254-8810"),
        ("Fone - 19 3254-8810", None, None, "19 3254-8810"),
        ("Celular = (19) 99876-5432", None, None, "(19) 99876-5432"),
        ("Tel.: +55 19 3254 8810", None, None, "+55 19 3254 8810"),
        ("WhatsApp: 19998765432", None, None, "19998765432"),
        ("Telefone: ramal 12", None, None, None),
    ],
)
def test_contact_labels(line: str, name: str | None, email: str | None, phone: str | None) -> None:
    customer = from_text(line)
    assert (customer.contact_name, customer.contact_email, customer.contact_phone) == (name, email, phone)


def test_two_labels_on_one_line() -> None:
    customer = from_text(f"Razão social: Drogaria Bom Jesus Ltda   CNPJ: {VALID} | EC: 1020304050")
    assert customer.company_name == "Drogaria Bom Jesus Ltda"
    assert customer.cnpj == VALID_DIGITS
    assert customer.establishment_codes == ("1020304050",)


def test_first_value_wins_for_single_fields() -> None:
    customer = from_text("Razão Social: Primeira Ltda\nRazão Social: Segunda Ltda")
    assert customer.company_name == "Primeira Ltda"


def test_missing_lists_required_fields_in_fixed_order() -> None:
    assert from_text("nada aqui").missing == ("cnpj", "establishment_codes", "company_name", "contact")
    assert from_text("Razão Social: X Ltda\nContato: Ana").missing == (
        "cnpj",
        "establishment_codes",
        "contact",
    )
    full = from_text(f"Razão Social: X Ltda\nCNPJ: {VALID}\nEC: 1234567\nTelefone: (11) 3333-4444")
    assert full.missing == ()


def test_subject_can_carry_the_cnpj() -> None:
    parsed = parsed_text(
        "Segue novo cliente.", subject=f"Novo cliente E-extrato - CNPJ {VALID} - EC 1020304050"
    )
    customer = extract_customer(parsed)
    assert customer.cnpj == VALID_DIGITS
    assert customer.establishment_codes == ("1020304050",)


# -- HTML tables ----------------------------------------------------------------------------------


def test_label_value_table_with_colons_and_markup() -> None:
    customer = from_html(
        "<table><tr><th>Razão Social:</th><td><b>Drogaria X Ltda</b></td></tr>"
        f"<tr><td>CNPJ</td><td><span>{VALID}</span></td></tr>"
        "<tr><td>Códigos de estabelecimento</td><td>1111111<br>2222222</td></tr>"
        "<tr><td>E-mail</td><td><a href='mailto:a@x.com.br'>a@x.com.br</a></td></tr></table>"
    )
    assert customer.company_name == "Drogaria X Ltda"
    assert customer.cnpj == VALID_DIGITS
    assert customer.establishment_codes == ("1111111", "2222222")
    assert customer.contact_email == "a@x.com.br"


def test_label_row_with_one_code_per_cell() -> None:
    customer = from_html(
        "<table><tr><td>EC</td><td>1111111</td><td>2222222</td><td>3333333</td></tr></table>"
    )
    assert customer.establishment_codes == ("1111111", "2222222", "3333333")


def test_four_column_label_value_rows() -> None:
    customer = from_html(
        "<table><tr><td>Razão Social</td><td>Drogaria X Ltda</td><td>CNPJ</td><td>"
        + VALID
        + "</td></tr><tr><td>EC</td><td>1111111</td><td>Telefone</td><td>(11) 3333-4444</td></tr></table>"
    )
    assert customer.company_name == "Drogaria X Ltda"
    assert customer.cnpj == VALID_DIGITS
    assert customer.establishment_codes == ("1111111",)
    assert customer.contact_phone == "(11) 3333-4444"


def test_header_row_table_one_row_per_establishment() -> None:
    customer = from_html(
        "<table><tr><th>Loja</th><th>Razão Social</th><th>CNPJ</th><th>EC</th></tr>"
        f"<tr><td>Centro</td><td>Drogaria X Ltda</td><td>{VALID}</td><td>1111111</td></tr>"
        f"<tr><td>Bairro</td><td>Drogaria X Ltda</td><td>{VALID}</td><td>2222222</td></tr>"
        "<tr><td>Vila</td><td></td><td></td><td>3333333</td></tr></table>"
    )
    assert customer.company_name == "Drogaria X Ltda"
    assert customer.cnpj == VALID_DIGITS
    assert customer.establishment_codes == ("1111111", "2222222", "3333333")


def test_header_with_one_label_column() -> None:
    customer = from_html(
        "<table><tr><th>Loja</th><th>Código do estabelecimento</th></tr>"
        "<tr><td>Centro</td><td>1111111</td></tr><tr><td>Bairro</td><td>2222222</td></tr></table>"
    )
    assert customer.establishment_codes == ("1111111", "2222222")


def test_label_value_pairs_inside_single_cells() -> None:
    customer = from_html(
        "<table><tr><td>Razão Social: Drogaria X Ltda<br>"
        f"CNPJ: {VALID}</td><td>EC = 1111111</td></tr></table>"
    )
    assert customer.company_name == "Drogaria X Ltda"
    assert customer.cnpj == VALID_DIGITS
    assert customer.establishment_codes == ("1111111",)


def test_label_value_outside_tables_in_html_only_mail() -> None:
    customer = from_html(f"<div><b>CNPJ:</b> {VALID}</div><div><b>EC:</b> 1111111</div>")
    assert customer.cnpj == VALID_DIGITS
    assert customer.establishment_codes == ("1111111",)


def test_tab_separated_block_in_plain_text() -> None:
    text = f"Razão Social\tCNPJ\tEC\nDrogaria X Ltda\t{VALID}\t1111111\nDrogaria X Ltda\t{VALID}\t2222222\n"
    customer = from_text(text)
    assert customer.company_name == "Drogaria X Ltda"
    assert customer.cnpj == VALID_DIGITS
    assert customer.establishment_codes == ("1111111", "2222222")


# -- CSV and TXT attachments -------------------------------------------------------------------------

CSV_ROWS = [
    ["Razão Social", "Nome Fantasia", "CNPJ", "Código do Estabelecimento", "Responsável", "E-mail", "Fone"],
    ["Drogaria Conceição Ltda", "Conceição", VALID, "1111111", "Ana Lúcia", "ana@x.com.br", "(11) 3333-4444"],
    [
        "Drogaria Conceição Ltda",
        "Conceição 2",
        VALID,
        "2222222",
        "Ana Lúcia",
        "ana@x.com.br",
        "(11) 3333-4444",
    ],
]


def _csv(separator: str, quote_all: bool = False) -> str:
    rows = []
    for row in CSV_ROWS:
        cells = [f'"{cell}"' if quote_all or separator in cell else cell for cell in row]
        rows.append(separator.join(cells))
    return "\r\n".join(rows) + "\r\n"


@pytest.mark.parametrize(
    ("content", "filename", "content_type"),
    [
        (_csv(";").encode("cp1252"), "dados.csv", "text/csv"),
        (_csv(",").encode("utf-8-sig"), "dados.csv", "application/octet-stream"),
        (_csv("\t").encode("utf-16"), "dados.txt", "text/plain"),
        (_csv(",", quote_all=True).encode("iso-8859-1"), "dados.CSV", "application/vnd.ms-excel"),
        (_csv(";").encode("utf-8"), "sem-extensao", "text/csv"),
    ],
)
def test_csv_attachments(content: bytes, filename: str, content_type: str) -> None:
    parsed = with_attachment(content, filename, content_type)
    customer = extract_customer(parsed)
    assert customer.company_name == "Drogaria Conceição Ltda"
    assert customer.trade_name == "Conceição"
    assert customer.cnpj == VALID_DIGITS
    assert customer.establishment_codes == ("1111111", "2222222")
    assert customer.contact_name == "Ana Lúcia"
    assert customer.contact_email == "ana@x.com.br"
    assert customer.contact_phone == "(11) 3333-4444"
    assert looks_like_onboarding(parsed)


def test_txt_attachment_with_label_lines() -> None:
    # "Códigos" alone names no field: only the ECs line gives codes.
    text = (
        f"Razão Social: Drogaria X, Filial Sul\nCNPJ: {VALID}\n"
        "Códigos: 1111111, 2222222\nECs: 3333333, 4444444\n"
    )
    customer = extract_customer(with_attachment(text.encode("cp1252"), "cliente.txt", "text/plain"))
    assert customer.company_name == "Drogaria X, Filial Sul"
    assert customer.cnpj == VALID_DIGITS
    assert customer.establishment_codes == ("3333333", "4444444")


def test_binary_attachments_are_not_read_as_csv() -> None:
    customer = extract_customer(
        with_attachment(b"CNPJ;EC\n" + VALID.encode() + b";1111111", "dados.pdf", "application/pdf")
    )
    assert customer.cnpj is None


# -- onboarding detection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    [
        ("Novo cliente", f"CNPJ: {VALID}", True),
        ("Dados", "Contratação do E-extrato concluída.\nEC: 1111111", True),
        ("Dados", f"Favor seguir com a integração.\nCNPJ: {VALID}", True),
        ("Dados", "Cliente contratou a conciliação.\nCódigo do estabelecimento: 1111111", True),
        ("Dados", "Cliente contratou a conciliação.\nCNPJ: ainda não informado", True),
        ("Integração E-extrato", "Segue sem dados por enquanto.", False),
        ("Dúvida", f"Meu CNPJ: {VALID}. O caixa travou.", False),
        ("Olá", "Bom dia, tudo bem?", False),
    ],
)
def test_looks_like_onboarding(subject: str, text: str, expected: bool) -> None:
    assert looks_like_onboarding(parsed_text(text, subject=subject)) is expected


def test_onboarding_label_in_csv_header_counts() -> None:
    assert looks_like_onboarding(with_attachment(_csv(";").encode(), "novo-cliente-e-extrato.csv"))


# -- robustness ---------------------------------------------------------------------------------------


_LINES = st.lists(
    st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            [
                "CNPJ:",
                "CNPJ: 12.ABC",
                "EC:",
                "EC: " + "9" * 200,
                "Razão Social:\t\t\t",
                "Contato: (((((",
                "E-mail: @@@",
                "Telefone: " + "1" * 500,
                "Códigos de estabelecimento:",
                "\t\t\t",
                ">" * 50,
            ]
        ),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_LINES)
def test_extraction_never_raises_on_text(lines: list[str]) -> None:
    parsed = parsed_text("\n".join(lines))
    customer = extract_customer(parsed)
    assert all(code.isdigit() for code in customer.establishment_codes)
    looks_like_onboarding(parsed)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(
            st.one_of(st.text(max_size=30), st.sampled_from(["CNPJ", "EC", "Razão Social", ""])), max_size=6
        ),
        max_size=8,
    )
)
def test_extraction_never_raises_on_tables(rows: list[list[str]]) -> None:
    import html

    body = (
        "<table>"
        + "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
        + "</table>"
    )
    customer = from_html(body)
    assert isinstance(customer, CustomerData)


def test_long_lines_and_subjects_of_repeated_labels() -> None:
    parsed = parsed_text("EC: 1234567 " * 50_000, subject="EC: 7654321 " * 50_000)
    assert extract_customer(parsed).establishment_codes[:2] == ("1234567", "7654321")
