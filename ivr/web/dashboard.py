"""The overview: tickets by category and state, overdue counts on both clocks, this week's follow-ups, and for
managers and admins the background jobs that finally failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from ivr.access import TicketScope, ticket_scope
from ivr.db import utcnow
from ivr.models import Category, Job, JobState, Ticket, TicketStatus
from ivr.runtime import request_session
from ivr.tickets.procedure import CATEGORY_LABELS, STATUS_LABELS
from ivr.tickets.sla import (
    AWAITING_FOLLOW_UP,
    BEFORE_RESOLVED,
    DISPATCH_WARNING,
    RESOLVE_WARNING,
    open_tickets,
)
from ivr.web.blueprint import blueprint

# Who is shown the failed background jobs: the people who run `ivr jobs retry` or have it run.
SEE_FAILED_JOBS = {"manager", "admin"}


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    css: str = ""


@dataclass(frozen=True)
class Overview:
    by_category: list[Bar]
    by_status: list[Bar]
    overdue_dispatch: int
    overdue_resolve: int
    due_soon: int
    follow_ups_due: list[Ticket]  # the first FOLLOW_UPS_SHOWN, longest waiting first
    follow_ups_total: int
    urgent_open: int
    total_open: int


FOLLOW_UPS_SHOWN = 50


def _counted(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _due_soon(due: InstrumentedAttribute[datetime | None], now: datetime, warning: timedelta) -> ColumnElement[bool]:
    """As `ivr.tickets.sla`: not past its deadline, and within the warning of it."""
    return and_(due >= now, due <= now + warning)


def overview(session: Session, scope: TicketScope) -> Overview:
    """Counts for the dashboard over the tickets the user may see, as SQL aggregates over the stored clocks
    (open tickets through the open-queue index)."""
    now = utcnow()
    before_resolved = [status.value for status in BEFORE_RESOLVED]
    awaiting = [status.value for status in AWAITING_FOLLOW_UP]
    registered = Ticket.status == TicketStatus.REGISTERED
    resolving = Ticket.status.in_(before_resolved)
    following_up = and_(Ticket.status.in_(awaiting), Ticket.follow_up_due.is_not(None))
    totals: Any = select(
        func.count(),
        _counted(Ticket.urgent.is_(True)),
        _counted(and_(registered, Ticket.dispatch_due < now)),
        _counted(and_(resolving, Ticket.resolve_due < now)),
        _counted(and_(registered, _due_soon(Ticket.dispatch_due, now, DISPATCH_WARNING)))
        + _counted(and_(resolving, _due_soon(Ticket.resolve_due, now, RESOLVE_WARNING)))
        + _counted(and_(following_up, _due_soon(Ticket.follow_up_due, now, timedelta(days=1)))),
        _counted(following_up),
    ).where(open_tickets())
    counts = session.execute(scope.where(totals)).one()
    total_open, urgent_open, overdue_dispatch, overdue_resolve, due_soon, follow_ups_total = tuple(counts)
    by_category: Any = select(Ticket.category, func.count()).where(open_tickets()).group_by(Ticket.category)
    categories: dict[Category, int] = {row[0]: row[1] for row in session.execute(scope.where(by_category))}
    by_status: Any = select(Ticket.status, func.count()).group_by(Ticket.status)
    statuses: dict[TicketStatus, int] = {row[0]: row[1] for row in session.execute(scope.where(by_status))}
    follow_ups = list(
        session.scalars(
            scope.where(select(Ticket).where(open_tickets(), following_up))
            .order_by(Ticket.resolved_at, Ticket.id)
            .limit(FOLLOW_UPS_SHOWN)
        )
    )
    return Overview(
        by_category=[Bar(CATEGORY_LABELS[c], categories.get(c, 0), c.value) for c in Category],
        by_status=[Bar(STATUS_LABELS[s], statuses.get(s, 0), s.value) for s in TicketStatus],
        overdue_dispatch=int(overdue_dispatch),
        overdue_resolve=int(overdue_resolve),
        due_soon=int(due_soon),
        follow_ups_due=follow_ups,
        follow_ups_total=int(follow_ups_total),
        urgent_open=int(urgent_open),
        total_open=int(total_open),
    )


@blueprint.get("/dashboard")
@login_required
def dashboard() -> ResponseReturnValue:
    session = request_session()  # reads only: never waits for the write lock
    failed_jobs = None
    if current_user.role in SEE_FAILED_JOBS:
        failed_jobs = session.scalar(select(func.count()).select_from(Job).where(Job.state == JobState.FAILED))
    return render_template(
        "dashboard.html", overview=overview(session, ticket_scope(current_user)), failed_jobs=failed_jobs
    )
