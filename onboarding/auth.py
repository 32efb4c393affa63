"""Users, passwords with lockout, and API tokens stored only as their sha256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from onboarding import audit
from onboarding.db import utcnow
from onboarding.errors import InvalidInput, NotFound
from onboarding.models import ApiToken, Role, User

MIN_PASSWORD_LENGTH = 8
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
TOKEN_PREFIX = "exd_"


def create_user(
    db: Session,
    email: str,
    role: str,
    password: str,
    *,
    name: str = "",
    enforce_rules: bool = True,
    actor: User | None = None,
) -> User:
    email = (email or "").strip().lower()
    if "@" not in email:
        raise InvalidInput("invalid_email", f"E-mail inválido: {email!r}.")
    try:
        role_value = Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput("invalid_role", f"Perfil inválido: {role!r}. Use um de: {allowed}.") from None
    if enforce_rules and len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput("weak_password", f"A senha precisa ter ao menos {MIN_PASSWORD_LENGTH} caracteres.")
    if db.scalars(select(User).where(User.email == email)).first() is not None:
        raise InvalidInput("user_exists", f"Já existe um usuário com o e-mail {email}.")
    user = User(email=email, role=role_value, name=name, password_hash=generate_password_hash(password))
    db.add(user)
    db.flush()
    audit.record(db, actor, "user.created", user, after={"email": email, "role": role_value.value})
    return user


def user_by_email(db: Session, email: str) -> User:
    user = db.scalars(select(User).where(User.email == (email or "").strip().lower())).first()
    if user is None:
        raise NotFound("user_not_found", f"Usuário {email} não encontrado.")
    return user


def authenticate(db: Session, email: str, password: str) -> tuple[User | None, str | None]:
    """(user, None) on success; (None, pt-BR reason) otherwise. Counts failures and locks."""
    user = db.scalars(select(User).where(User.email == (email or "").strip().lower())).first()
    generic = "E-mail ou senha incorretos."
    if user is None or not user.active:
        return None, generic
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        return None, "Conta bloqueada temporariamente por excesso de tentativas. Tente de novo mais tarde."
    if not check_password_hash(user.password_hash, password or ""):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
            audit.record(db, None, "user.locked", user, after={"locked_until": user.locked_until.isoformat()})
        return None, generic
    user.failed_logins = 0
    user.locked_until = None
    return user, None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(db: Session, user: User, label: str = "") -> str:
    """A new token for `user`; only its hash is kept, so the caller must show it now."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=hash_token(token), label=label)
    db.add(row)
    db.flush()
    audit.record(db, user, "api_token.issued", row, after={"label": label})
    return token


def revoke_token(db: Session, actor: User, token_id: int) -> ApiToken:
    row = db.get(ApiToken, token_id)
    if row is None or (row.user_id != actor.id and actor.role != Role.ADMIN):
        raise NotFound("token_not_found", "Token não encontrado.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(db, actor, "api_token.revoked", row)
    db.flush()
    return row


def user_for_token(db: Session, token: str) -> User | None:
    row = db.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    return row.user
