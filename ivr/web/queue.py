"""The night queue: urgent first, then by SLA clock; filters, full-text search, self-refreshing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import make_response, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from sqlalchemy import ColumnElement, Select, func, select, text
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.interfaces import LoaderOption

from ivr.db import utcnow
from ivr.models import Category, Recording, Ticket, TicketStatus, Transcript
from ivr.runtime import current_settings, request_session
from ivr.tickets.procedure import CATEGORY_LABELS, DEPARTMENTS, STATUS_LABELS
from ivr.tickets.search import search_tickets
from ivr.tickets.sla import current_clock, open_tickets, queue_order_by
from ivr.web.access import console_ticket_scope
from ivr.web.blueprint import blueprint
from ivr.web.paging import PAGE_SIZE, Page, count_cap, last_page, offset, page, page_of_found, requested_page

OPEN = "open"


def _local_day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time.min, tzinfo=zone)
    return start, start + timedelta(days=1)


def filtered_query(args: dict[str, str]) -> Select[Any]:
    """The tickets matching the queue's filters but the search words (status defaults to everything not closed)."""
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
    return query


def _page_url(args: dict[str, Any], number: int) -> str:
    return url_for("console.queue", **args, page=number)


def _with_first_words() -> Sequence[LoaderOption]:
    """The first words come from the takes (Ticket.text): loaded with the page, not row by row, and only the
    text (not each take's timed words)."""
    transcripts = selectinload(Ticket.recordings).selectinload(Recording.transcripts)
    return (
        selectinload(Ticket.call),
        transcripts.load_only(Transcript.channel, Transcript.text, Transcript.corrected_text),
    )


def _search_page(
    session: Session, matching: Select[Any], args: dict[str, Any], now: datetime
) -> tuple[Page, list[Ticket]]:
    """A page of search results, from the first matching ids in the page's order (closed tickets newest first,
    straight from the search index; others in the queue's order), counted up to a cap."""
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        # As the overview's counts: parallel workers cost more to start than they save on a search's scans
        # (200,000 tickets, 2 cores: 吵 among open tickets 28-40 ms alone, 42-65 ms with two workers).
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    found, ticket_id = search_tickets(matching, args["q"], dialect)
    closed = args.get("status") == TicketStatus.CLOSED.value
    order = [ticket_id.desc()] if closed else queue_order_by(now)
    requested = requested_page(request.args.get("page"))
    cap = count_cap(requested)
    ids = list(session.scalars(found.with_only_columns(Ticket.id).order_by(*order).limit(cap + 1)))
    result, shown = page_of_found(ids, requested, cap, lambda number: _page_url(args, number))
    loaded = {
        ticket.id: ticket
        for ticket in session.scalars(select(Ticket).where(Ticket.id.in_(shown)).options(*_with_first_words()))
    }
    return result, [loaded[ticket_id] for ticket_id in shown]


def _queue_page(
    session: Session, matching: Select[Any], args: dict[str, Any], now: datetime
) -> tuple[Page, list[Ticket]]:
    """A page of the queue, counted exactly: open tickets by the queue's order, closed ones newest first."""
    total = session.scalar(select(func.count()).select_from(matching.with_only_columns(Ticket.id).subquery())) or 0
    number = min(requested_page(request.args.get("page")), last_page(total))
    order: list[ColumnElement[Any]]
    if args.get("status") == TicketStatus.CLOSED.value:
        order = [Ticket.created_at.desc(), Ticket.id.desc()]  # no clock runs on a closed ticket: newest first
    else:
        order = queue_order_by(now)
    query = matching.options(*_with_first_words()).order_by(*order).limit(PAGE_SIZE).offset(offset(number))
    tickets = list(session.scalars(query))
    return page(number, len(tickets), total, lambda number: _page_url(args, number)), tickets


@blueprint.get("/")
@login_required
def queue() -> ResponseReturnValue:
    """The queue page (or just its rows, for the page's own refresh): ordered, counted and paged in SQL."""
    args = {key: value for key, value in request.args.items() if value and key != "page"}
    timezone = current_settings().timezone
    now = utcnow()
    session = request_session()  # reads only: never waits for the write lock
    matching = console_ticket_scope().where(filtered_query(args))
    if args.get("q", "").strip():
        result, tickets = _search_page(session, matching, args, now)
    else:
        result, tickets = _queue_page(session, matching, args, now)
    rows = [(ticket, current_clock(ticket, now, timezone)) for ticket in tickets]
    partial = request.headers.get("X-Partial") == "rows"
    response = make_response(
        render_template(
            "_queue_rows.html" if partial else "queue.html",
            rows=rows,
            args=args,
            page=result,
            categories=CATEGORY_LABELS,
            statuses=STATUS_LABELS,
            departments=DEPARTMENTS,
        )
    )
    if partial:  # the page's own refresh puts the new count in its pager (queue.js); percent-encoded: a header
        response.headers["X-Queue-Summary"] = quote(result.summary)
    return response
