from flask.cli import AppGroup

mail_cli = AppGroup("mail", help="Support mailbox: poll, import, outbox.")
