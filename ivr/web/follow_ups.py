"""The 回访 page for the night shift, managers and admins: follow-up calls scheduled (when due, which attempt),
calling now, and the tickets to call back by hand (unreachable, a refused number, opted out), each linking to
its ticket and each list paged; only the follow-ups of tickets in the account's scope (its properties)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from ivr.access import TICKET_WORKERS
from ivr.followup.calls import MAX_ATTEMPTS, OUTCOME_LABELS, call_back_by_hand_query
from ivr.models import FollowUp, FollowUpState
from ivr.properties import all_properties
from ivr.runtime import current_settings, request_session
from ivr.web.access import console_ticket_scope, roles_required
from ivr.web.blueprint import blueprint
from ivr.web.paging import PAGE_SIZE, Page, last_page, offset, page, requested_page

# Each list of the page and the query argument that pages it.
LISTS = {"scheduled": "scheduled_page", "calling": "calling_page", "by_hand": "by_hand_page"}


@dataclass(frozen=True)
class FollowUpList:
    """One list of the page: a page of its follow-ups (tickets loaded) and its pager."""

    page: Page
    rows: list[FollowUp]


def _in_state(state: FollowUpState, *order: Any) -> Select[Any]:
    return (
        select(FollowUp)
        .join(FollowUp.ticket)
        .where(FollowUp.state == state)
        .options(selectinload(FollowUp.ticket))
        .order_by(*order, FollowUp.id)
    )


def _paged(session: Session, query: Select[Any], name: str, url: Callable[[str, int], str]) -> FollowUpList:
    """The page of `query` asked for by the list's own argument, counted exactly, within the account's scope."""
    query = console_ticket_scope().where(query)
    total = session.scalar(select(func.count()).select_from(query.with_only_columns(FollowUp.id).subquery())) or 0
    number = min(requested_page(request.args.get(LISTS[name])), last_page(total))
    rows = list(session.scalars(query.limit(PAGE_SIZE).offset(offset(number))))
    return FollowUpList(page(number, len(rows), total, lambda n: url(name, n)), rows)


@blueprint.get("/follow-ups")
@roles_required(*TICKET_WORKERS)
def follow_ups() -> ResponseReturnValue:
    """`?property=CODE` narrows to one property; `scheduled_page`, `calling_page`, `by_hand_page` page each list."""
    session = request_session()  # reads only
    kept: dict[str, Any] = {key: value for key, value in request.args.items() if value}

    def url(name: str, number: int) -> str:
        return url_for("console.follow_ups", **{**kept, LISTS[name]: number})

    lists = {
        "scheduled": _paged(session, _in_state(FollowUpState.SCHEDULED, FollowUp.due_at), "scheduled", url),
        "calling": _paged(session, _in_state(FollowUpState.CALLING, FollowUp.last_attempt_at), "calling", url),
        "by_hand": _paged(session, call_back_by_hand_query(), "by_hand", url),
    }
    names = {line.id: line.name for line in all_properties(session, current_settings())}
    return render_template(
        "follow_ups.html",
        lists=lists,
        property_names=names,
        max_attempts=MAX_ATTEMPTS,
        outcomes=OUTCOME_LABELS,
    )
