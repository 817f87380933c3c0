"""Staff accounts and API tokens (no Flask imports)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from ivr.db import utcnow
from ivr.models import ApiToken, User

ROLES = {
    "night_shift": "值班",
    "qa": "质检",
    "department": "部门",
    "manager": "经理",
    "admin": "管理员",
}
TOKEN_PREFIX = "ivr_"


class StaffError(ValueError):
    """An account or token request that cannot be carried out; the message says why."""


def create_user(
    session: Session, username: str, password: str, role: str, *, department: str | None = None,
    display_name: str | None = None, phone: str | None = None,
) -> User:
    """A new staff account with a hashed password."""
    if role not in ROLES:
        raise StaffError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role == "department" and not department:
        raise StaffError("a department account needs --department (e.g. 工程部)")
    check_password_rules(password)
    if session.scalars(select(User).where(User.username == username)).first():
        raise StaffError(f"user {username!r} already exists")
    user = User(username=username, password_hash=generate_password_hash(password), role=role,
                department=department, display_name=display_name, phone=phone)
    session.add(user)
    session.flush()
    return user


def check_password_rules(password: str) -> None:
    """Long enough to resist guessing (login attempts are rate-limited too)."""
    if len(password) < 10:
        raise StaffError("passwords must be at least 10 characters")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, user: User | None = None) -> str:
    """A new API token; only its digest is stored, so the plain token is returned once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_sha256=token_digest(token), user=user))
    session.flush()
    return token


def token_owner(session: Session, token: str) -> ApiToken | None:
    """The live token record for a presented bearer token."""
    record = session.scalars(select(ApiToken).where(ApiToken.token_sha256 == token_digest(token))).first()
    if record is None or record.revoked or (record.user is not None and not record.user.active):
        return None
    record.last_used_at = utcnow()
    return record
