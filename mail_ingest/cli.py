"""`flask --app wsgi mail ...`: the command group shared by outbound and inbound mail."""

from __future__ import annotations

from flask.cli import AppGroup

mail_cli = AppGroup("mail", help="E-mail: caixa de saída e caixa de entrada.")
