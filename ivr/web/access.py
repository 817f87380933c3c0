"""The access policy (ivr.access) in Flask terms: the roles_required decorator and `enforce`, which turns a
decision into the status both the console and the API answer with."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import abort
from flask_login import current_user, login_required

from ivr.access import MANAGE_USERS, Access, Role, role_of

__all__ = ["MANAGE_USERS", "enforce", "roles_required"]

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
