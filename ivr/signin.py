"""Staff log-in rules (no Flask): passwords checked in constant time, failed attempts limited per
(account, address) and per address with growing delays, every attempt recorded for the accounts page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from ivr.db import utcnow
from ivr.models import LoginAttempt, User

# Compared against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = "scrypt:32768:8:1$0000000000000000$" + "0" * 128


@dataclass(frozen=True)
class FailureLimit:
    """After `allowed` failures, log-in waits `first` after the last failure, doubling with each further
    failure, at most `longest`. Waiting is never held against anyone: refused tries are not failures."""

    allowed: int
    first: timedelta = timedelta(minutes=1)
    longest: timedelta = timedelta(minutes=15)

    def delay(self, failures: int) -> timedelta | None:
        if failures < self.allowed:
            return None
        wait: timedelta = self.first * 2 ** min(failures - self.allowed, 16)
        return min(wait, self.longest)


# One (account, address) pair: someone guessing one account's password, or its owner mistyping.
PER_ACCOUNT_AND_ADDRESS = FailureLimit(allowed=5)
# One address across accounts: someone trying many names. Behind a proxy this is only the client's own
# address when IVR_TRUSTED_PROXIES says how many proxies there are.
PER_ADDRESS = FailureLimit(allowed=20)
# Failures older than this are forgotten (and, for a pair, those before its last successful log-in).
FAILURE_MEMORY = timedelta(hours=24)


def _from(address: str | None) -> ColumnElement[bool]:
    return LoginAttempt.remote_addr.is_(None) if address is None else LoginAttempt.remote_addr == address


def _wait_left(
    session: Session, limit: FailureLimit, condition: ColumnElement[bool], since: datetime, now: datetime
) -> timedelta | None:
    """How long the failures matching `condition` since `since` still refuse log-in, or None."""
    failures, last = session.execute(
        select(func.count(), func.max(LoginAttempt.at)).where(
            condition, LoginAttempt.succeeded.is_(False), LoginAttempt.refused.is_(False), LoginAttempt.at > since
        )
    ).one()
    delay = limit.delay(failures or 0)
    if delay is None or last is None or last + delay <= now:
        return None
    return last + delay - now


def retry_after(session: Session, username: str, address: str | None, now: datetime) -> timedelta | None:
    """How long log-in as `username` from `address` is refused, or None when it may be tried now."""
    since = now - FAILURE_MEMORY
    pair = (LoginAttempt.username == username) & _from(address)
    last_success = session.scalar(
        select(func.max(LoginAttempt.at)).where(pair, LoginAttempt.succeeded.is_(True), LoginAttempt.at > since)
    )
    waits = [
        _wait_left(session, PER_ACCOUNT_AND_ADDRESS, pair, max(since, last_success or since), now),
        _wait_left(session, PER_ADDRESS, _from(address), since, now),
    ]
    return max((w for w in waits if w is not None), default=None)


@dataclass(frozen=True)
class LoginTrouble:
    """Failed or refused log-ins of one name from one address, for the accounts page."""

    username: str
    remote_addr: str | None
    failures: int
    refusals: int
    last_at: datetime
    refused_for: timedelta | None


def recent_login_trouble(session: Session, now: datetime | None = None, limit: int = 50) -> list[LoginTrouble]:
    """Names and addresses with failed or refused log-ins within FAILURE_MEMORY, most recent first."""
    now = now or utcnow()
    refused = func.sum(case((LoginAttempt.refused, 1), else_=0))
    rows = session.execute(
        select(LoginAttempt.username, LoginAttempt.remote_addr, func.count(), refused, func.max(LoginAttempt.at))
        .where(LoginAttempt.succeeded.is_(False), LoginAttempt.at > now - FAILURE_MEMORY)
        .group_by(LoginAttempt.username, LoginAttempt.remote_addr)
        .order_by(func.max(LoginAttempt.at).desc())
        .limit(limit)
    ).all()
    return [
        LoginTrouble(
            username,
            address,
            total - (refusals or 0),
            refusals or 0,
            last,
            retry_after(session, username, address, now),
        )
        for username, address, total, refusals, last in rows
    ]


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active account with this name and password, or None (the same work whether the name exists)."""
    user = session.scalars(select(User).where(User.username == username)).first()
    valid = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    return user if user is not None and valid and user.active else None


def record_attempt(
    session: Session,
    username: str,
    address: str | None,
    at: datetime,
    *,
    succeeded: bool = False,
    refused: bool = False,
) -> None:
    """Keep a log-in attempt: what the limits count and the accounts page shows."""
    session.add(LoginAttempt(username=username, remote_addr=address, at=at, succeeded=succeeded, refused=refused))
