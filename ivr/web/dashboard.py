"""The overview: tickets by category and state, overdue counts on both clocks, this week's follow-ups, and for
managers and admins the background jobs that finally failed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from flask import render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ivr.access import ticket_scope
from ivr.db import utcnow
from ivr.models import Category, Job, JobState, Ticket, TicketStatus
from ivr.runtime import current_settings, request_session
from ivr.tickets.procedure import CATEGORY_LABELS, STATUS_LABELS
from ivr.tickets.sla import SlaState, clocks
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
    follow_ups_due: list[Ticket]
    urgent_open: int
    total_open: int


def overview(tickets: list[Ticket], timezone: str) -> Overview:
    """Counts for the dashboard from the tickets the user may see."""
    now = utcnow()
    open_tickets = [t for t in tickets if t.status != TicketStatus.CLOSED]
    categories = Counter(t.category for t in open_tickets)
    statuses = Counter(t.status for t in tickets)
    overdue: Counter[str] = Counter()
    due_soon = 0
    follow_ups = []
    for ticket in open_tickets:
        for clock in clocks(ticket, now, timezone):
            if clock.state == SlaState.OVERDUE:
                overdue[clock.name] += 1
            elif clock.state == SlaState.DUE_SOON:
                due_soon += 1
            if clock.name == "follow_up" and clock.state != SlaState.DONE:
                follow_ups.append(ticket)
    return Overview(
        by_category=[Bar(CATEGORY_LABELS[c], categories[c], c.value) for c in Category],
        by_status=[Bar(STATUS_LABELS[s], statuses[s], s.value) for s in TicketStatus],
        overdue_dispatch=overdue["dispatch"],
        overdue_resolve=overdue["resolve"],
        due_soon=due_soon,
        follow_ups_due=sorted(follow_ups, key=lambda t: t.resolved_at or now),
        urgent_open=sum(1 for t in open_tickets if t.urgent),
        total_open=len(open_tickets),
    )


@blueprint.get("/dashboard")
@login_required
def dashboard() -> ResponseReturnValue:
    session = request_session()  # reads only: never waits for the write lock
    query = ticket_scope(current_user).where(select(Ticket).options(selectinload(Ticket.call)))
    tickets: list[Ticket] = list(session.scalars(query))
    failed_jobs = None
    if current_user.role in SEE_FAILED_JOBS:
        failed_jobs = session.scalar(select(func.count()).select_from(Job).where(Job.state == JobState.FAILED))
    return render_template(
        "dashboard.html", overview=overview(tickets, current_settings().timezone), failed_jobs=failed_jobs
    )
