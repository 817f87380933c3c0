"""Staff log-in: hashed passwords, secure session cookies, failed attempts rate-limited."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import ColumnElement, func, select
from werkzeug.security import check_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ivr.db import utcnow
from ivr.models import LoginAttempt, User
from ivr.runtime import request_session
from ivr.web.headers import security_headers

blueprint = Blueprint("auth", __name__, url_prefix="/console", template_folder="templates")
blueprint.after_request(security_headers)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "请先登录"
login_manager.session_protection = "strong"

ATTEMPT_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20
# Compared against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = "scrypt:32768:8:1$0000000000000000$" + "0" * 128


class StaffUser:
    """The logged-in account as Flask-Login sees it (a detached copy of the row)."""

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.username = user.username
        self.display_name = user.display_name or user.username
        self.role = user.role
        self.department = user.department
        self.is_active = user.active
        self.is_authenticated = True
        self.is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    if not user_id.isdigit():
        return None
    user = request_session().get(User, int(user_id))
    return StaffUser(user) if user is not None and user.active else None


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("密码", validators=[DataRequired(), Length(max=256)])


def _too_many_failures(username: str, address: str | None) -> bool:
    since = utcnow() - ATTEMPT_WINDOW
    session = request_session()

    def failures(condition: ColumnElement[bool]) -> int:
        query = select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.succeeded.is_(False), LoginAttempt.at >= since, condition)
        return session.scalar(query) or 0

    return (failures(LoginAttempt.username == username) >= MAX_FAILURES_PER_USER
            or failures(LoginAttempt.remote_addr == address) >= MAX_FAILURES_PER_ADDRESS)


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
        username = form.username.data.strip()
        address = request.remote_addr
        if _too_many_failures(username, address):
            return render_template("login.html", form=form, error="登录失败次数过多,请15分钟后再试"), 429
        session = request_session()
        user = session.scalars(select(User).where(User.username == username)).first()
        valid = check_password_hash(user.password_hash if user else _DUMMY_HASH, form.password.data)
        ok = bool(user and valid and user.active)
        session.add(LoginAttempt(username=username[:64], remote_addr=address, succeeded=ok))
        session.commit()
        staff = StaffUser(user) if ok and user else None
        if staff is None:
            return render_template("login.html", form=form, error="用户名或密码错误"), 401
        login_user(staff)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", form=form, error=None)


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    logout_user()
    flash("您已退出登录")
    return redirect(url_for("auth.login"))
