"""The night queue: urgent first, then by SLA clock; filters, full-text search, self-refreshing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import selectinload

from ivr.access import ticket_scope
from ivr.db import utcnow
from ivr.models import Category, Recording, Ticket, TicketStatus
from ivr.runtime import current_settings, request_session
from ivr.tickets.procedure import CATEGORY_LABELS, DEPARTMENTS, STATUS_LABELS
from ivr.tickets.search import search_condition as ticket_search
from ivr.tickets.sla import current_clock, open_tickets, queue_order_by
from ivr.web.blueprint import blueprint

PAGE_SIZE = 50
OPEN = "open"


def search_condition(text: str) -> ColumnElement[bool]:
    """Words staff type match what was said in a message take (the machine's text or a person's correction),
    notes, number, room or caller (through the search indexes, ivr.tickets.search)."""
    return ticket_search(text, request_session().get_bind().dialect)


def _local_day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time.min, tzinfo=zone)
    return start, start + timedelta(days=1)


def filtered_query(args: dict[str, str]) -> Select[Any]:
    """The tickets matching the queue's filters (status defaults to everything not closed)."""
    query = select(Ticket)
    status = args.get("status", OPEN)
    if status == OPEN:
        query = query.where(open_tickets())
    elif status in set(TicketStatus):
        query = query.where(Ticket.status == TicketStatus(status))
    if (category := args.get("category", "")) in set(Category):
        query = query.where(Ticket.category == Category(category))
    if room := args.get("room", "").strip():
        # A prefix as a range the room index serves (LIKE is case-insensitive on SQLite: no index), then exact.
        query = query.where(Ticket.room >= room, Ticket.room < room + "\U0010ffff")
        query = query.where(Ticket.room.startswith(room, autoescape=True))
    if (department := args.get("department")) in DEPARTMENTS:
        query = query.where(Ticket.department == department)
    if args.get("urgent") == "1":
        query = query.where(Ticket.urgent.is_(True))
    if day := args.get("date", ""):
        try:
            start, end = _local_day_bounds(date.fromisoformat(day), current_settings().timezone)
        except ValueError:
            pass
        else:
            query = query.where(Ticket.created_at >= start, Ticket.created_at < end)
    if text := args.get("q", "").strip():
        query = query.where(search_condition(text))
    return query


@dataclass(frozen=True)
class Page:
    """One page of the queue: which rows of how many, and where the neighbouring pages are."""

    number: int
    first: int  # 1-based position of the first row shown (0 when nothing matches)
    last: int
    total: int
    previous_url: str | None
    next_url: str | None


def _page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or "1"))
    except ValueError:
        return 1


def _page_url(args: dict[str, Any], number: int) -> str:
    return url_for("console.queue", **args, page=number)


@blueprint.get("/")
@login_required
def queue() -> ResponseReturnValue:
    """The queue page (or just its rows, for the page's own refresh): ordered, counted and paged in SQL."""
    args = {key: value for key, value in request.args.items() if value and key != "page"}
    timezone = current_settings().timezone
    now = utcnow()
    session = request_session()  # reads only: never waits for the write lock
    matching = ticket_scope(current_user).where(filtered_query(args))
    total = session.scalar(select(func.count()).select_from(matching.with_only_columns(Ticket.id).subquery())) or 0
    number = min(_page_number(request.args.get("page")), max(1, -(-total // PAGE_SIZE)))
    order: list[ColumnElement[Any]]
    if args.get("status") == TicketStatus.CLOSED.value:
        order = [Ticket.created_at.desc(), Ticket.id.desc()]  # no clock runs on a closed ticket: newest first
    else:
        order = queue_order_by(now)
    tickets: list[Ticket] = list(
        session.scalars(
            matching.options(
                # The first words come from the takes (Ticket.text): load them with the page, not row by row.
                selectinload(Ticket.call),
                selectinload(Ticket.recordings).selectinload(Recording.transcripts),
            )
            .order_by(*order)
            .limit(PAGE_SIZE)
            .offset((number - 1) * PAGE_SIZE)
        )
    )
    rows = [(ticket, current_clock(ticket, now, timezone)) for ticket in tickets]
    first = (number - 1) * PAGE_SIZE + 1 if tickets else 0
    page = Page(
        number=number,
        first=first,
        last=first + len(tickets) - 1 if tickets else 0,
        total=total,
        previous_url=_page_url(args, number - 1) if number > 1 else None,
        next_url=_page_url(args, number + 1) if number * PAGE_SIZE < total else None,
    )
    template = "_queue_rows.html" if request.headers.get("X-Partial") == "rows" else "queue.html"
    return render_template(
        template,
        rows=rows,
        args=args,
        page=page,
        categories=CATEGORY_LABELS,
        statuses=STATUS_LABELS,
        departments=DEPARTMENTS,
    )
