"""Sign-in with Flask-Login: werkzeug password hashes and lockout from onboarding.auth, CSRF on forms."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from onboarding import auth, db
from onboarding.models import User
from onboarding.web_common import bp

PUBLIC_ENDPOINTS = frozenset({"web.login", "web.healthz"})

login_manager = LoginManager()
login_manager.login_view = "web.login"
login_manager.login_message = "Entre com seu e-mail e senha para continuar."
login_manager.login_message_category = "info"
login_manager.session_protection = "strong"


class WebUser(UserMixin):
    """Flask-Login's view of a desk user; attribute reads fall through to the ORM row."""

    def __init__(self, user: User) -> None:
        self.user = user

    def get_id(self) -> str:
        return str(self.user.id)

    @property
    def is_active(self) -> bool:
        return bool(self.user.active)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)


@login_manager.user_loader
def _load_user(user_id: str) -> WebUser | None:
    try:
        user = db.session().get(User, int(user_id))
    except ValueError:
        return None
    if user is None or not user.active:
        return None
    return WebUser(user)


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
        login_user(WebUser(user))
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
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=12))  # a working day from sign-in
    app.config.setdefault("SESSION_REFRESH_EACH_REQUEST", False)  # no new cookie on every page view
    login_manager.init_app(app)
