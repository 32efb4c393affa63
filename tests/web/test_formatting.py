"""pt-BR formatting filters: dates in the business time zone, R$ amounts, CNPJ, ages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from babel.numbers import format_decimal
from flask import Flask

from onboarding.formatting import age_br, cnpj, date_br, datetime_br, money_br, number_br


def test_money_br() -> None:
    assert money_br(123456) == "R$ 1.234,56"
    assert money_br(5) == "R$ 0,05"
    assert money_br(100000000) == "R$ 1.000.000,00"
    assert money_br(-3333) == "-R$ 33,33"
    assert money_br(None) == ""


def test_dates_in_the_business_time_zone() -> None:
    utc = datetime(2026, 1, 15, 2, 30, tzinfo=UTC)  # 23:30 of the 14th in São Paulo
    assert datetime_br(utc) == "14/01/2026 23:30"
    assert date_br(utc) == "14/01/2026"
    assert date_br(date(2026, 3, 9)) == "09/03/2026"
    assert datetime_br(None) == "" and date_br(None) == ""


def test_time_zone_comes_from_config() -> None:
    app = Flask(__name__)
    app.config["TIMEZONE"] = "America/Manaus"
    with app.app_context():
        assert datetime_br(datetime(2026, 1, 15, 2, 30, tzinfo=UTC)) == "14/01/2026 22:30"


def test_cnpj_and_age() -> None:
    assert cnpj("52601815000120") == "52.601.815/0001-20"
    assert cnpj("52.601.815/0001-20") == "52.601.815/0001-20"
    assert cnpj("123") == "123" and cnpj(None) == ""
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert age_br(now - timedelta(days=3, hours=2), now) == "3 dias"
    assert age_br(now - timedelta(hours=5), now) == "5 horas"
    assert age_br(now - timedelta(seconds=10), now) == "agora"
    assert age_br(now - timedelta(minutes=1), now) == "1 minuto"
    assert age_br(now - timedelta(days=1, hours=23), now) == "1 dia"
    assert age_br(now - timedelta(days=65), now) == "2 meses"
    assert age_br(now - timedelta(days=400), now) == "1 ano"


def test_number_br() -> None:
    assert number_br(1234567) == "1.234.567"
    assert number_br(0) == "0" and number_br(None) == ""
    assert number_br(-1234) == "-1.234" and number_br(1234.5) == "1.234,5"
    for value in (7, 999, 1000, 12345, -999999, 10**15):  # integers skip Babel: the same text
        assert number_br(value) == format_decimal(value, locale="pt_BR")


def test_filters_are_registered_for_every_template(app: Flask) -> None:
    with app.app_context():
        rendered = app.jinja_env.from_string(
            "{{ 123456|money_br }} {{ '52601815000120'|cnpj }} {{ when|datetime_br }} {{ when|date_br }}"
        ).render(when=datetime(2026, 7, 1, 15, 0, tzinfo=UTC))
    assert rendered == "R$ 1.234,56 52.601.815/0001-20 01/07/2026 12:00 01/07/2026"
