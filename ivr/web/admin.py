"""Staff accounts, for company-wide admins: create, deactivate / reactivate, reset a password, the properties
each works for; recent log-in trouble."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ivr.access import accounts_access
from ivr.models import User
from ivr.properties import all_properties
from ivr.runtime import current_settings, request_transaction
from ivr.signin import recent_login_trouble
from ivr.staff import ROLES, StaffError, create_user, set_password, set_properties, toggle_active
from ivr.tickets.procedure import DEPARTMENTS
from ivr.web.access import MANAGE_USERS, enforce, roles_required
from ivr.web.auth import StaffUser
from ivr.web.blueprint import blueprint


@blueprint.get("/users")
@roles_required(*MANAGE_USERS)
def users() -> ResponseReturnValue:
    """Every account with its role, department and properties; the form for a new one; log-in trouble."""
    enforce(accounts_access(current_user))
    with request_transaction() as session:
        accounts = list(session.scalars(select(User).options(selectinload(User.properties)).order_by(User.username)))
        properties = all_properties(session, current_settings())
        return render_template(
            "users.html",
            users=accounts,
            roles=ROLES,
            departments=DEPARTMENTS,
            properties=properties,
            property_names={line.id: line.name for line in properties},
            login_trouble=recent_login_trouble(session),
        )


@blueprint.post("/users")
@roles_required(*MANAGE_USERS)
def create_account() -> ResponseReturnValue:
    """A new account; the properties ticked are the ones it works for (none: the whole company)."""
    enforce(accounts_access(current_user))
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
                property_codes=form.getlist("property"),
            )
    except StaffError as exc:
        flash(str(exc), "error")
    else:
        flash(f"已创建账号 {form.get('username')}", "ok")
    return redirect(url_for("console.users"))


@blueprint.post("/users/<int:user_id>")
@roles_required(*MANAGE_USERS)
def update_account(user_id: int) -> ResponseReturnValue:
    """Deactivate / reactivate, or set a new password (either ends the account's sessions), or set the
    properties it works for (its sessions and tokens follow at their next request)."""
    enforce(accounts_access(current_user))
    with request_transaction() as session:
        user = session.get(User, user_id)
        if user is None:
            abort(404)
        if request.form.get("action") == "properties":
            try:
                chosen = set_properties(session, user, request.form.getlist("property"))
            except StaffError as exc:
                flash(str(exc), "error")
            else:
                names = {line.id: line.name for line in all_properties(session, current_settings())}
                where = "、".join(names.get(p.id, p.code) for p in chosen) or "全公司"
                flash(f"{user.username} 的所属小区已改为:{where}", "ok")
        elif request.form.get("action") == "toggle":
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
