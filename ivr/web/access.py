"""The access policy (ivr.access) in Flask terms: the roles_required decorator, `enforce`, which turns a
decision into the status both the console and the API answer with, and the console's property filter
(`?property=CODE`) narrowing the policy's scopes for one request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import abort, request, url_for
from flask_login import current_user, login_required
from sqlalchemy.orm import Session

from ivr.access import (
    MANAGE_USERS,
    Access,
    EvaluationScope,
    Role,
    TicketScope,
    evaluation_scope,
    property_scope,
    role_of,
    ticket_scope,
)
from ivr.properties import all_properties, property_directory
from ivr.runtime import current_settings, request_session

__all__ = [
    "MANAGE_USERS",
    "console_evaluation_scope",
    "console_ticket_scope",
    "enforce",
    "property_filter",
    "roles_required",
]

P = ParamSpec("P")
R = TypeVar("R")


def enforce(access: Access, *, hidden: str | None = None, forbidden: str | None = None) -> None:
    """Go on when allowed; otherwise 404 (hidden: not even its existence is told) or 403 (forbidden), with
    the reason given (the API shows it)."""
    if access is Access.HIDDEN:
        abort(404, hidden)
    if access is not Access.ALLOWED:
        abort(403, forbidden)


def roles_required(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Log in first; then 403 unless the user has one of `roles` (Role members or their values)."""
    allowed = frozenset(Role(role) for role in roles)

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        @login_required
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if role_of(current_user) not in allowed:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


# The property filter -----------------------------------------------------------------------------------------

# The pages that narrow what they show to ?property=CODE; the header's selector goes to the queue from others.
PROPERTY_FILTERED_PAGES = frozenset(
    {
        "console.queue",
        "console.dashboard",
        "console.qa_list",
        "console.qa_mine",
        "console.qa_reports",
        "console.follow_ups",
        "console.follow_up_report_page",
    }
)


def property_id_of_code(session: Session, code: str) -> int | None:
    """The id of the property with this code (as the directory has it, read at most every 30 s), or None."""
    code = code.strip().lower()
    return next((row.id for row in property_directory(session).all_stored() if row.code == code), None)


def requested_properties() -> frozenset[int] | None:
    """The request's ?property=CODE: None when not asked; no property for a code no property has."""
    code = request.args.get("property", "").strip()
    if not code:
        return None
    found = property_id_of_code(request_session(), code)
    return frozenset() if found is None else frozenset({found})


def console_ticket_scope() -> TicketScope:
    """The tickets the logged-in account may see (ivr.access.ticket_scope), narrowed to the request's
    ?property=CODE: a property outside the account's, or a code no property has, shows nothing."""
    scope = ticket_scope(current_user)
    wanted = requested_properties()
    return scope if wanted is None else scope.within(wanted)


def console_evaluation_scope() -> EvaluationScope:
    """The evaluations the logged-in account may find, narrowed to the request's ?property=CODE likewise."""
    scope = evaluation_scope(current_user)
    wanted = requested_properties()
    return scope if wanted is None else scope.within(wanted)


@dataclass(frozen=True)
class PropertyFilter:
    """The header's property selector: the properties the account sees (shown when more than one), the one
    asked for, and where choosing one goes (this page with its other filters, or the queue)."""

    choices: list[tuple[str, str]]  # code, name
    selected: str
    selected_unknown: bool  # asked for a property that is not among the choices (it shows nothing)
    action: str
    keep: list[tuple[str, str]]  # the page's other query arguments


def property_filter() -> dict[str, Any]:
    """Template context (every page): `property_filter`, or None for visitors and single-property accounts; and
    `desk_name`, the name the header gives the desk: the account's one property's, the property chosen in the
    selector, else IVR_PROPERTY_NAME's."""
    settings = current_settings()
    if not current_user.is_authenticated:
        return {"property_filter": None, "desk_name": settings.property_name}
    session = request_session()
    allowed = property_scope(current_user)
    choices = [
        (line.code, line.name) for line in all_properties(session, settings) if allowed is None or line.id in allowed
    ]
    if len(choices) < 2:
        return {"property_filter": None, "desk_name": choices[0][1] if choices else settings.property_name}
    selected = request.args.get("property", "").strip().lower()
    here = request.endpoint in PROPERTY_FILTERED_PAGES
    return {
        "desk_name": next((name for code, name in choices if here and code == selected), settings.property_name),
        "property_filter": PropertyFilter(
            choices=choices,
            selected=selected,
            selected_unknown=bool(selected) and selected not in {code for code, _ in choices},
            action=request.path if here else url_for("console.queue"),
            keep=[(k, v) for k, v in request.args.items(multi=True) if k not in ("property", "page")] if here else [],
        ),
    }
