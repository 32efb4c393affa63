"""Forms with field-level pt-BR messages (CSRF comes from the app-wide CSRFProtect)."""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import EmailField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from onboarding.errors import InvalidInput
from onboarding.services import normalize_cnpj

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CODE_SEPARATORS = re.compile(r"[\s,;]+")


MAX_CODE_LENGTH = 40


def split_codes(raw: str | None) -> list[str]:
    """Establishment codes typed one per line or separated by commas, semicolons or spaces.

    A code longer than the column allows is refused (InvalidInput), never cut.
    """
    codes = [code for code in CODE_SEPARATORS.split(raw or "") if code]
    for code in codes:
        if len(code) > MAX_CODE_LENGTH:
            raise InvalidInput(
                "invalid_establishment_code",
                f"Código de estabelecimento longo demais ({len(code)} caracteres; máximo {MAX_CODE_LENGTH}).",
            )
    return codes


def _valid_codes(_form: Any, field: Any) -> None:
    try:
        split_codes(field.data)
    except InvalidInput as error:
        raise ValidationError(error.message) from None


def _valid_cnpj(_form: Any, field: Any) -> None:
    try:
        normalize_cnpj(field.data)
    except InvalidInput as error:
        raise ValidationError(error.message) from None


class OpenTicketForm(FlaskForm):
    customer_name = StringField(
        "Razão social do cliente",
        validators=[DataRequired("Informe o nome do cliente."), Length(max=200)],
    )
    cnpj = StringField(
        "CNPJ",
        validators=[DataRequired("Informe o CNPJ."), Length(max=30), _valid_cnpj],
        description="Com ou sem pontuação: 00.000.000/0000-00.",
    )
    establishment_codes = TextAreaField(
        "Códigos de estabelecimento",
        validators=[Optional(), Length(max=2000), _valid_codes],
        description="Um por linha, ou separados por vírgula. Podem ser informados depois.",
    )
    contact_email = EmailField(
        "E-mail de contato",
        validators=[
            Optional(),
            Length(max=254),
            Regexp(EMAIL, message="Informe um e-mail válido, como nome@empresa.com.br."),
        ],
    )
