"""Who may see and do what in the console and the API (roles from ivr.staff.ROLES)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, Protocol, TypeVar

from flask import abort
from flask_login import current_user, login_required
from sqlalchemy import Select

from ivr.models import Ticket

P = ParamSpec("P")
R = TypeVar("R")

class Staff(Protocol):
    """A logged-in account or the owner of an API token."""

    username: str
    role: str
    department: str | None


# What each role may do with tickets.
WORK_TICKETS = {"night_shift", "manager", "admin"}  # dispatch, reply, follow up, close, correct, notes
DEPARTMENT_STEPS = {"start", "analysis", "resolve"}
MANAGE_USERS = {"admin"}


def visible(query: Select[Any], user: Staff) -> Select[Any]:
    """Limit a ticket query to what the user may see: a department sees only its own tickets."""
    if user.role == "department":
        return query.where(Ticket.department == user.department)
    return query


def can_see(ticket: Ticket, user: Staff) -> bool:
    return user.role != "department" or ticket.department == user.department


def can_take_step(step: str, ticket: Ticket, user: Staff) -> bool:
    """Night shift, managers and admins run the whole procedure; a department works its own tickets."""
    if user.role in WORK_TICKETS:
        return True
    return user.role == "department" and ticket.department == user.department and step in DEPARTMENT_STEPS


def can_edit_ticket(ticket: Ticket, user: Staff) -> bool:
    """Correct the transcript and write notes."""
    return user.role in WORK_TICKETS or (user.role == "department" and ticket.department == user.department)


def roles_required(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Log in first; then 403 unless the user has one of `roles`."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        @login_required
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate
