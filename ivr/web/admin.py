"""Staff accounts, for admins: create, deactivate / reactivate, reset a password; recent log-in trouble."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user
from sqlalchemy import select

from ivr.models import User
from ivr.runtime import request_transaction
from ivr.signin import recent_login_trouble
from ivr.staff import ROLES, StaffError, create_user, set_password, toggle_active
from ivr.tickets.procedure import DEPARTMENTS
from ivr.web.access import MANAGE_USERS, roles_required
from ivr.web.auth import StaffUser
from ivr.web.blueprint import blueprint


@blueprint.get("/users")
@roles_required(*MANAGE_USERS)
def users() -> ResponseReturnValue:
    with request_transaction() as session:
        accounts = list(session.scalars(select(User).order_by(User.username)))
        return render_template(
            "users.html",
            users=accounts,
            roles=ROLES,
            departments=DEPARTMENTS,
            login_trouble=recent_login_trouble(session),
        )


@blueprint.post("/users")
@roles_required(*MANAGE_USERS)
def create_account() -> ResponseReturnValue:
    form = request.form
    try:
        with request_transaction() as session:
            create_user(
                session,
                form.get("username", "").strip(),
                form.get("password", ""),
                form.get("role", ""),
                department=form.get("department") or None,
                display_name=form.get("display_name") or None,
                phone=form.get("phone") or None,
            )
    except StaffError as exc:
        flash(str(exc), "error")
    else:
        flash(f"已创建账号 {form.get('username')}", "ok")
    return redirect(url_for("console.users"))


@blueprint.post("/users/<int:user_id>")
@roles_required(*MANAGE_USERS)
def update_account(user_id: int) -> ResponseReturnValue:
    """Deactivate / reactivate, or set a new password; either ends the account's sessions."""
    with request_transaction() as session:
        user = session.get(User, user_id)
        if user is None:
            abort(404)
        if request.form.get("action") == "toggle":
            try:
                active = toggle_active(user, current_user.id)
            except StaffError as exc:
                flash(str(exc), "error")
            else:
                flash(f"{user.username} 已{'启用' if active else '停用'}", "ok")
        elif password := request.form.get("password", ""):
            try:
                set_password(user, password)
            except StaffError as exc:
                flash(str(exc), "error")
            else:
                if user.id == current_user.id:
                    login_user(StaffUser(user))  # the admin's own sessions elsewhere end, this one goes on
                flash(f"{user.username} 的密码已重置,其登录会话已全部结束", "ok")
    return redirect(url_for("console.users"))
