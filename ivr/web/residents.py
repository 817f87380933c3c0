"""The resident registry in the console, for admins: a property's registered phones, a page at a time; register a
phone for a room, correct a name, remove a phone. The next `ivr residents import` replaces all of it."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session

from ivr.access import MANAGE_USERS, property_scope
from ivr.models import Resident
from ivr.properties import LineProperty, all_properties
from ivr.residents.registry import (
    ResidentError,
    add_resident,
    count_residents,
    find_residents,
    remove_resident,
    rename_resident,
)
from ivr.runtime import current_settings, request_session, request_transaction
from ivr.web.access import roles_required
from ivr.web.blueprint import blueprint

PAGE_SIZE = 100


def _own_properties(session: Session) -> list[LineProperty]:
    """The properties the admin works for (an account with none: every property)."""
    mine = property_scope(current_user)  # None: the whole company
    return [line for line in all_properties(session, current_settings()) if mine is None or line.id in mine]


def _chosen(properties: list[LineProperty], code: str | None) -> LineProperty:
    """The property named in the request (the first one when none is named); 404 outside the admin's."""
    if code is None:
        if not properties:
            abort(404)
        return properties[0]
    found = next((line for line in properties if line.code == code), None)
    if found is None:
        abort(404)
    return found


def _back(line: LineProperty) -> ResponseReturnValue:
    kept: dict[str, Any] = {key: value for key in ("q", "page") if (value := request.form.get(key, "").strip())}
    return redirect(url_for("console.residents", property=line.code, **kept))


@blueprint.get("/residents")
@roles_required(*MANAGE_USERS)
def residents() -> ResponseReturnValue:
    """`property` (code), `q` (part of a room, name or phone), `page` from 1."""
    session = request_session()  # reads only
    properties = _own_properties(session)
    line = _chosen(properties, request.args.get("property"))
    search = request.args.get("q", "").strip()[:64]
    found = find_residents(session, line.id, search=search or None)
    pages = max((len(found) + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    first = (page - 1) * PAGE_SIZE
    return render_template(
        "residents.html",
        properties=properties,
        line=line,
        search=search,
        rows=found[first : first + PAGE_SIZE],
        first=first,
        matched=len(found),
        total=count_residents(session, line.id),
        page=page,
        pages=pages,
    )


@blueprint.post("/residents")
@roles_required(*MANAGE_USERS)
def add_resident_phone() -> ResponseReturnValue:
    form = request.form
    with request_transaction() as session:
        line = _chosen(_own_properties(session), form.get("property", ""))
        try:
            added = add_resident(
                session,
                line.id,
                form.get("room", ""),
                form.get("name", ""),
                form.get("phone", ""),
                current_user.username,
            )
        except ResidentError as exc:
            flash(str(exc), "error")
        else:
            flash(f"已登记 {added.room} {added.name or ''} {added.phone}", "ok")
    return _back(line)


@blueprint.post("/residents/<int:resident_id>")
@roles_required(*MANAGE_USERS)
def update_resident(resident_id: int) -> ResponseReturnValue:
    """action=rename (with `name`) or action=remove."""
    with request_transaction() as session:
        resident = session.get(Resident, resident_id)
        line = next((p for p in _own_properties(session) if resident and p.id == resident.property_id), None)
        if resident is None or line is None:
            abort(404)
        action = request.form.get("action")
        if action == "rename":
            try:
                rename_resident(resident, request.form.get("name", ""), current_user.username)
            except ResidentError as exc:
                flash(str(exc), "error")
            else:
                flash(f"已更新 {resident.room} {resident.phone} 的姓名", "ok")
        elif action == "remove":
            remove_resident(session, resident)
            flash(f"已从 {resident.room} 删除电话 {resident.phone}", "ok")
        else:
            abort(400)
    return _back(line)
