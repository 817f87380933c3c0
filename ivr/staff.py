"""Staff accounts and API tokens (no Flask imports)."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload
from werkzeug.security import generate_password_hash

from ivr.db import utcnow
from ivr.models import ApiToken, Property, User

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
    session: Session,
    username: str,
    password: str,
    role: str,
    *,
    department: str | None = None,
    display_name: str | None = None,
    phone: str | None = None,
    property_codes: Iterable[str] = (),
) -> User:
    """A new staff account with a hashed password, working for the properties with these codes (none: the
    whole company)."""
    if role not in ROLES:
        raise StaffError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role == "department" and not department:
        raise StaffError("a department account needs --department (e.g. 工程部)")
    check_password_rules(password)
    if session.scalars(select(User).where(User.username == username)).first():
        raise StaffError(f"user {username!r} already exists")
    properties = properties_of_codes(session, property_codes)
    user = User(
        username=username,
        password_hash=generate_password_hash(password),
        role=role,
        department=department,
        display_name=display_name,
        phone=phone,
        properties=properties,
    )
    session.add(user)
    session.flush()
    return user


def properties_of_codes(session: Session, codes: Iterable[str]) -> list[Property]:
    """The properties with these codes (in code order); StaffError naming every unknown code and the codes
    there are."""
    wanted = sorted({code.strip().lower() for code in codes if code.strip()})
    if not wanted:
        return []
    found = list(session.scalars(select(Property).where(Property.code.in_(wanted)).order_by(Property.code)))
    unknown = [code for code in wanted if code not in {p.code for p in found}]
    if unknown:
        there = ", ".join(session.scalars(select(Property.code).order_by(Property.code)))
        raise StaffError(
            f"no property {', '.join(map(repr, unknown))} (there are: {there}); create it with `ivr property create`"
        )
    return found


def set_properties(session: Session, user: User, codes: Iterable[str]) -> list[Property]:
    """The properties the account works for from now on, replacing what it had; no codes: the whole company.
    Its sessions and tokens follow at their next request (the account is read again for each)."""
    user.properties = properties_of_codes(session, codes)
    session.flush()
    return user.properties


def check_password_rules(password: str) -> None:
    """Long enough to resist guessing (login attempts are rate-limited too)."""
    if len(password) < 10:
        raise StaffError("passwords must be at least 10 characters")


def set_password(user: User, password: str) -> None:
    """A new password for the account; its sessions elsewhere end (the console logs in again)."""
    check_password_rules(password)
    user.password_hash = generate_password_hash(password)
    end_sessions(user)


def end_sessions(user: User) -> None:
    """Every session of this account stops working: sessions carry the version they were made with."""
    user.session_version = (user.session_version or 0) + 1


def toggle_active(user: User, admin_id: int) -> bool:
    """Disable the account, or enable it again, for the admin `admin_id`; either way its sessions end
    (re-enabling does not bring old sessions back). Nobody disables their own account. Returns `user.active`."""
    if user.id == admin_id:
        raise StaffError("不能停用自己的账号")
    user.active = not user.active
    end_sessions(user)
    return user.active


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


DEFAULT_TOKEN_LIFETIME = timedelta(days=90)


class TokenRefused(Exception):
    """A presented bearer token that does not open the API; the message says why (it becomes the 401)."""


def parse_expiry(text: str, timezone: str, now: datetime | None = None) -> datetime | None:
    """`--expires`: `30d` (days from now), `2027-01-31` (valid to the end of that day, property time) or
    `never` (None)."""
    now = now or utcnow()
    text = text.strip().lower()
    if text == "never":
        return None
    if match := re.fullmatch(r"(\d{1,4})d", text):
        days = int(match.group(1))
        if days < 1:
            raise StaffError("--expires needs at least 1d")
        return now + timedelta(days=days)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise StaffError(
            f"--expires must be a number of days (30d), a date (2027-01-31) or never, not {text!r}"
        ) from None
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=ZoneInfo(timezone)).astimezone(UTC)
    if end <= now:
        raise StaffError(f"--expires {text} is in the past")
    return end


def create_token(
    session: Session,
    name: str,
    user: User | None = None,
    *,
    service: bool = False,
    expires: timedelta | datetime | None = DEFAULT_TOKEN_LIFETIME,
) -> str:
    """A new API token acting for `user`, or a service token (no account: sees every ticket) when `service`
    is asked for explicitly. `expires`: a lifetime, a moment, or None for never. Only the digest is stored,
    so the plain token is returned once."""
    if user is None and not service:
        raise StaffError(
            "a token acts for a staff account (--user NAME) or, asked for explicitly, is a service "
            "token that sees every ticket (--service)"
        )
    if user is not None and service:
        raise StaffError("a token is either for a staff account (--user) or a service token (--service), not both")
    if not name.strip() or len(name) > 64:
        raise StaffError("a token name is 1 to 64 characters")
    if name.isdigit():
        raise StaffError("a token name cannot be only digits (`ivr token revoke` takes an id or a name)")
    if _live_tokens_named(session, name):
        raise StaffError(f"a live token is already called {name!r}; revoke it or choose another name")
    now = utcnow()
    expires_at = now + expires if isinstance(expires, timedelta) else expires
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            name=name,
            token_sha256=token_digest(token),
            user=user,
            service=service,
            created_at=now,
            expires_at=expires_at,
        )
    )
    session.flush()
    return token


def _live_tokens_named(session: Session, name: str) -> list[ApiToken]:
    now = utcnow()
    query = select(ApiToken).where(ApiToken.name == name, ApiToken.revoked.is_(False)).order_by(ApiToken.id)
    return [t for t in session.scalars(query) if t.expires_at is None or t.expires_at > now]


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, newest first, with its account loaded."""
    return list(session.scalars(select(ApiToken).options(selectinload(ApiToken.user)).order_by(ApiToken.id.desc())))


def token_state(token: ApiToken, now: datetime | None = None) -> str:
    """revoked, expired, account-disabled or active: what the API would make of it now."""
    if token.revoked:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        return "expired"
    if token.user is not None and not token.user.active:
        return "account-disabled"
    return "active"


def revoke_token(session: Session, id_or_name: str) -> ApiToken:
    """Revoke the token with this id, or the one live token with this name."""
    if id_or_name.isdigit():
        found = session.get(ApiToken, int(id_or_name))
        if found is None:
            raise StaffError(f"no token with id {id_or_name} (see `ivr token list`)")
        record = found
    else:
        named = _live_tokens_named(session, id_or_name)
        if not named:
            raise StaffError(f"no live token called {id_or_name!r} (see `ivr token list`)")
        if len(named) > 1:  # made before names were kept unique among live tokens
            ids = ", ".join(str(t.id) for t in named)
            raise StaffError(f"several live tokens are called {id_or_name!r} (ids {ids}): revoke one by id")
        record = named[0]
    record.revoked = True
    session.flush()
    return record


def token_owner(session: Session, token: str) -> ApiToken:
    """The live token record for a presented bearer token, its last use recorded; TokenRefused otherwise."""
    # The account and its properties in the same query: the access policy asks them of every ticket.
    record = (
        session.scalars(
            select(ApiToken)
            .where(ApiToken.token_sha256 == token_digest(token))
            .options(joinedload(ApiToken.user).joinedload(User.properties))
        )
        .unique()
        .first()
    )
    if record is None:
        raise TokenRefused("invalid token")
    now = utcnow()
    if record.revoked:
        raise TokenRefused("token revoked")
    if record.expires_at is not None and record.expires_at <= now:
        raise TokenRefused(f"token expired at {record.expires_at:%Y-%m-%d %H:%M} UTC")
    if record.user is None and not record.service:
        raise TokenRefused("token has no account")
    if record.user is not None and not record.user.active:
        raise TokenRefused("the token's account is disabled")
    record.last_used_at = now
    return record
