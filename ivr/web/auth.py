"""Staff log-in: hashed passwords, secure session cookies that end at log-out, failed attempts limited per
(account, address) and per address with growing delays."""

from __future__ import annotations

import logging
import math
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import joinedload
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ivr.db import utcnow
from ivr.models import User
from ivr.runtime import request_session, request_transaction
from ivr.signin import authenticate, record_attempt, retry_after
from ivr.staff import end_sessions
from ivr.web.access import property_filter
from ivr.web.headers import security_headers

log = logging.getLogger(__name__)
blueprint = Blueprint("auth", __name__, url_prefix="/console", template_folder="templates")
blueprint.after_request(security_headers)
blueprint.app_context_processor(property_filter)  # the header's property selector, on every console page
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "请先登录"
login_manager.session_protection = "strong"


class StaffUser:
    """The logged-in account as Flask-Login sees it (a detached copy of the row, with its properties)."""

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.username = user.username
        self.display_name = user.display_name or user.username
        self.role = user.role
        self.department = user.department
        # None: the whole company (an account with no property), as ivr.access.Staff.property_ids says.
        self.property_ids: frozenset[int] | None = frozenset(p.id for p in user.properties) or None
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
    user = request_session().get(User, int(user_id), options=[joinedload(User.properties)])
    if user is None or not user.active or (user.session_version or 0) != int(version):
        return None
    return StaffUser(user)


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("密码", validators=[DataRequired(), Length(max=256)])


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
            record_attempt(session, username, address, now, refused=True)
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
        user = authenticate(session, username, form.password.data)
        record_attempt(session, username, address, now, succeeded=user is not None)
        session.commit()
        if user is None:
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
