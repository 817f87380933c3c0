"""The overview: tickets by category and state, overdue counts on both clocks, this week's follow-ups (the weekly
follow-up report's figures), and for managers and admins the background jobs that finally failed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from flask import render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import ColumnElement, Select, and_, func, or_, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from ivr.access import TICKET_WORKERS, TicketScope, has_role
from ivr.db import utcnow
from ivr.followup.report import FollowUpTally, PropertyZones, current_week, property_zones, week_follow_ups
from ivr.models import Category, Job, JobState, Ticket, TicketStatus
from ivr.runtime import current_settings, request_session
from ivr.tickets.procedure import CATEGORY_LABELS, STATUS_LABELS
from ivr.tickets.sla import (
    AWAITING_FOLLOW_UP,
    BEFORE_RESOLVED,
    DISPATCH_WARNING,
    RESOLVE_WARNING,
    open_tickets,
)
from ivr.web.access import console_ticket_scope
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
    follow_up_week: str  # this week (ISO, the console's time zone)
    follow_ups: FollowUpTally  # its follow-ups, as the 回访 page's report counts them
    urgent_open: int
    total_open: int


def _due_soon(due: InstrumentedAttribute[datetime | None], now: datetime, warning: timedelta) -> ColumnElement[bool]:
    """As `ivr.tickets.sla`: not past its deadline, and within the warning of it."""
    return and_(due >= now, due <= now + warning)


def _following_up() -> ColumnElement[bool]:
    return and_(Ticket.status.in_([s.value for s in AWAITING_FOLLOW_UP]), Ticket.follow_up_due.is_not(None))


def open_counts(now: datetime) -> Select[Any]:
    """One pass over the open tickets (the open-queue index): per category and state, how many, and of those
    how many are urgent, overdue on either clock, and due soon."""
    registered = Ticket.status == TicketStatus.REGISTERED
    resolving = Ticket.status.in_([status.value for status in BEFORE_RESOLVED])
    following_up = _following_up()
    due_soon = or_(
        and_(registered, _due_soon(Ticket.dispatch_due, now, DISPATCH_WARNING)),
        and_(resolving, _due_soon(Ticket.resolve_due, now, RESOLVE_WARNING)),
        and_(following_up, _due_soon(Ticket.follow_up_due, now, timedelta(days=1))),
    )
    # Many columns: typed as the scope takes a query, not by each column.
    return cast(
        "Select[Any]",
        select(
            Ticket.category,
            Ticket.status,
            func.count(),
            func.count().filter(Ticket.urgent.is_(True)),
            func.count().filter(registered, Ticket.dispatch_due < now),
            func.count().filter(resolving, Ticket.resolve_due < now),
            func.count().filter(due_soon),
        )
        .where(open_tickets())
        .group_by(Ticket.category, Ticket.status),
    )


def closed_count() -> Select[Any]:
    """The closed tickets, counted from the (status, created_at) index alone."""
    return select(func.count()).select_from(Ticket).where(Ticket.status == TicketStatus.CLOSED)


def overview(session: Session, scope: TicketScope, zones: PropertyZones, week: str) -> Overview:
    """Counts for the dashboard over the tickets the user may see, as SQL aggregates over the stored clocks:
    the open tickets in one pass of the open-queue index, the closed ones counted in another, and the week's
    follow-ups grouped as the weekly report groups them (each property's week in its own time zone)."""
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # Each count takes tens of milliseconds on its own; parallel workers cost more to start than they save
        # (200,000 tickets, 2 cores: the closed count 18-20 ms alone, 47-50 ms as a parallel seq scan).
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    categories: Counter[Category] = Counter()
    statuses: Counter[TicketStatus] = Counter()
    totals = [0] * 5  # open, urgent, overdue dispatch, overdue resolve, due soon
    for category, status, *counts in session.execute(scope.where(open_counts(now))):
        categories[category] += counts[0]
        statuses[status] += counts[0]
        totals = [total + int(count) for total, count in zip(totals, counts, strict=True)]
    statuses[TicketStatus.CLOSED] = session.scalar(scope.where(closed_count())) or 0
    total_open, urgent_open, overdue_dispatch, overdue_resolve, due_soon = totals
    return Overview(
        by_category=[Bar(CATEGORY_LABELS[c], categories[c], c.value) for c in Category],
        by_status=[Bar(STATUS_LABELS[s], statuses[s], s.value) for s in TicketStatus],
        overdue_dispatch=overdue_dispatch,
        overdue_resolve=overdue_resolve,
        due_soon=due_soon,
        follow_up_week=week,
        follow_ups=week_follow_ups(session, week, zones, scope),
        urgent_open=urgent_open,
        total_open=total_open,
    )


@blueprint.get("/dashboard")
@login_required
def dashboard() -> ResponseReturnValue:
    session = request_session()  # reads only: never waits for the write lock
    failed_jobs = None
    if current_user.role in SEE_FAILED_JOBS:
        failed_jobs = session.scalar(select(func.count()).select_from(Job).where(Job.state == JobState.FAILED))
    settings = current_settings()
    return render_template(
        "dashboard.html",
        overview=overview(
            session, console_ticket_scope(), property_zones(session, settings), current_week(settings.timezone)
        ),
        failed_jobs=failed_jobs,
        follow_up_page=has_role(current_user, TICKET_WORKERS),
    )
