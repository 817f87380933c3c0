"""Staff log-in: hashed passwords, secure session cookies that end at log-out, failed attempts limited per
(account, address) and per address with growing delays."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ivr.db import utcnow
from ivr.models import LoginAttempt, User
from ivr.runtime import request_session, request_transaction
from ivr.staff import end_sessions
from ivr.web.headers import security_headers

log = logging.getLogger(__name__)
blueprint = Blueprint("auth", __name__, url_prefix="/console", template_folder="templates")
blueprint.after_request(security_headers)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "请先登录"
login_manager.session_protection = "strong"

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


class StaffUser:
    """The logged-in account as Flask-Login sees it (a detached copy of the row)."""

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.username = user.username
        self.display_name = user.display_name or user.username
        self.role = user.role
        self.department = user.department
        self.session_version = user.session_version or 0
        self.is_active = user.active
        self.is_authenticated = True
        self.is_anonymous = False

    def get_id(self) -> str:
        """What the session cookie carries: the account and its session version (log-out and a password
        change bump the version, so every session made before stops working)."""
        return f"{self.id}:{self.session_version}"


@login_manager.user_loader
def load_user(session_id: str) -> StaffUser | None:
    user_id, _, version = session_id.partition(":")
    if not (user_id.isdigit() and version.isdigit()):
        return None  # includes sessions from before versions existed
    user = request_session().get(User, int(user_id))
    if user is None or not user.active or (user.session_version or 0) != int(version):
        return None
    return StaffUser(user)


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("密码", validators=[DataRequired(), Length(max=256)])


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


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a crafted ?next= must not send staff elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("console.queue")


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The log-in page."""
    if current_user.is_authenticated:
        return redirect(url_for("console.queue"))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip()[:64]
        address = request.remote_addr  # the client's, through ProxyFix when IVR_TRUSTED_PROXIES is set
        session = request_session()
        now = utcnow()
        wait = retry_after(session, username, address, now)
        if wait is not None:
            session.add(LoginAttempt(username=username, remote_addr=address, at=now, refused=True))
            session.commit()
            minutes = max(1, math.ceil(wait.total_seconds() / 60))
            log.warning(
                "log-in refused for %r from %s: too many failed log-ins, %d s left",
                username,
                address,
                math.ceil(wait.total_seconds()),
            )
            page = render_template("login.html", form=form, error=f"登录失败次数过多,请{minutes}分钟后再试")
            return page, 429, {"Retry-After": str(math.ceil(wait.total_seconds()))}
        user = session.scalars(select(User).where(User.username == username)).first()
        valid = check_password_hash(user.password_hash if user else _DUMMY_HASH, form.password.data)
        ok = bool(user and valid and user.active)
        session.add(LoginAttempt(username=username, remote_addr=address, at=now, succeeded=ok))
        session.commit()
        if not ok or user is None:
            log.info("failed log-in for %r from %s", username, address)
            return render_template("login.html", form=form, error="用户名或密码错误"), 401
        login_user(StaffUser(user))
        return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", form=form, error=None)


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    """Log out: every session of this account ends, on this device and any other."""
    if current_user.is_authenticated:
        with request_transaction() as session:
            user = session.get(User, current_user.id)
            if user is not None:
                end_sessions(user)
    logout_user()
    flash("您已退出登录")
    return redirect(url_for("auth.login"))
