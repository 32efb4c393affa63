"""Sign-in with Flask-Login: werkzeug password hashes and lockout from onboarding.auth, CSRF on forms."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from flask import Flask, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import bindparam, select
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from onboarding import auth, db
from onboarding.models import User
from onboarding.web_common import bp

USER = User.__table__

PUBLIC_ENDPOINTS = frozenset({"web.login", "web.healthz"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

login_manager = LoginManager()
login_manager.login_view = "web.login"
login_manager.login_message = "Entre com seu e-mail e senha para continuar."
login_manager.login_message_category = "info"
# "strong" would sign agents out whenever a proxy changes their address.
login_manager.session_protection = "basic"


class SignedIn(NamedTuple):
    """What the pages need of the signed-in user: read from the database on every request, so a
    deactivation or a change of role counts from the next request on."""

    id: int
    email: str
    name: str
    role: str


_SIGNED_IN = select(USER.c.id, USER.c.email, USER.c.name, USER.c.role).where(
    USER.c.id == bindparam("id"), USER.c.active.is_(True)
)  # one small Core query: a page view does not need the ORM row


class WebUser(UserMixin):
    """Flask-Login's view of a desk user. `id`, `email`, `name` and `role` come from this request's
    read; the ORM row (`user`, and any other attribute) is loaded only when a page asks for it."""

    def __init__(self, account: SignedIn, user: User | None = None) -> None:
        self.id, self.email, self.name, self.role = account
        self._user = user

    @classmethod
    def of(cls, user: User) -> WebUser:
        return cls(SignedIn(user.id, user.email, user.name, user.role), user)

    @property
    def display_name(self) -> str:
        return self.name or self.email

    @property
    def user(self) -> User:
        if self._user is None:
            self._user = db.session().get_one(User, self.id)
        return self._user

    def get_id(self) -> str:
        return str(self.id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)


@login_manager.user_loader
def _load_user(user_id: str) -> WebUser | None:
    """Only an active user is signed in (UserMixin.is_active is then true)."""
    try:
        uid = int(user_id)
    except ValueError:
        return None
    if request.method in READ_METHODS:  # a page view: the four columns it shows
        row = db.session().connection().execute(_SIGNED_IN, {"id": uid}).first()
        return WebUser(SignedIn(*row)) if row is not None else None
    user = db.session().get(User, uid)  # a state change acts as the ORM row: one query either way
    return WebUser.of(user) if user is not None and user.active else None


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired("Informe o e-mail."), Length(max=254)])
    password = PasswordField("Senha", validators=[DataRequired("Informe a senha."), Length(max=200)])


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, not protocol-relative)."""
    if not target:
        return url_for("web.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("web.home")
    return target


def _fresh_session() -> None:
    session.clear()
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)  # token cached for the old one


@bp.before_request
def _require_login() -> ResponseReturnValue | None:
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return login_manager.unauthorized()


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    form = LoginForm()
    if form.validate_on_submit():
        session_db = db.session()
        user, reason = auth.authenticate(session_db, form.email.data or "", form.password.data or "")
        session_db.commit()  # keeps the failure count and the lockout
        if user is None:
            flash(reason or "E-mail ou senha incorretos.", "error")
            return render_template("onboarding/login.html", form=form), 401
        target = _safe_next(request.args.get("next"))
        _fresh_session()  # no fixation: nothing of the anonymous session survives
        login_user(WebUser.of(user))
        session.permanent = True
        return redirect(target, code=303)
    status = 400 if form.errors else 200
    return render_template("onboarding/login.html", form=form), status


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    logout_user()
    _fresh_session()
    flash("Você saiu do sistema.", "info")
    return redirect(url_for("web.login"), code=303)


def init_app(app: Flask) -> None:
    # A working day from sign-in, without re-signing and re-sending the cookie on every page view
    # (Flask's own defaults are 31 days and a refresh on every request, so these are set outright).
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=12)
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    login_manager.init_app(app)
