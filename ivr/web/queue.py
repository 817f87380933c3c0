"""The night queue: urgent first, then by SLA clock; filters, full-text search, self-refreshing."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import ColumnElement, Select, exists, or_, select
from sqlalchemy.orm import selectinload

from ivr.access import ticket_scope
from ivr.db import utcnow
from ivr.models import Category, Recording, RecordingSource, Ticket, TicketNote, TicketStatus, Transcript
from ivr.runtime import current_settings, request_session
from ivr.tickets.procedure import CATEGORY_LABELS, DEPARTMENTS, STATUS_LABELS
from ivr.tickets.sla import current_clock, queue_order
from ivr.web.blueprint import blueprint

QUEUE_LIMIT = 500
OPEN = "open"


def search_condition(text: str) -> ColumnElement[bool]:
    """Words staff type match what was said in a message take (the machine's text or a person's correction),
    notes, number, room or caller."""
    pattern = text.strip()
    said = exists().where(
        Recording.ticket_id == Ticket.id,
        Recording.source == RecordingSource.MESSAGE,
        Transcript.recording_id == Recording.id,
        or_(
            Transcript.text.contains(pattern, autoescape=True),
            Transcript.corrected_text.contains(pattern, autoescape=True),
        ),
    )
    note_matches = exists().where(TicketNote.ticket_id == Ticket.id, TicketNote.text.contains(pattern, autoescape=True))
    return or_(
        said,
        Ticket.note.contains(pattern, autoescape=True),
        Ticket.number.contains(pattern, autoescape=True),
        Ticket.room.contains(pattern, autoescape=True),
        Ticket.caller_number.contains(pattern, autoescape=True),
        note_matches,
    )


def _local_day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time.min, tzinfo=zone)
    return start, start + timedelta(days=1)


def filtered_query(args: dict[str, str]) -> Select[Any]:
    """The tickets matching the queue's filters (status defaults to everything not closed)."""
    # The first words come from the takes (Ticket.text): load them with the tickets, not row by row.
    query = select(Ticket).options(
        selectinload(Ticket.call), selectinload(Ticket.recordings).selectinload(Recording.transcripts)
    )
    status = args.get("status", OPEN)
    if status == OPEN:
        query = query.where(Ticket.status != TicketStatus.CLOSED)
    elif status in set(TicketStatus):
        query = query.where(Ticket.status == TicketStatus(status))
    if (category := args.get("category", "")) in set(Category):
        query = query.where(Ticket.category == Category(category))
    if room := args.get("room", "").strip():
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


@blueprint.get("/")
@login_required
def queue() -> ResponseReturnValue:
    """The queue page (or just its rows, for the page's own refresh)."""
    args = {key: value for key, value in request.args.items() if value}
    timezone = current_settings().timezone
    now = utcnow()
    session = request_session()  # reads only: never waits for the write lock
    query = ticket_scope(current_user).where(filtered_query(args))
    tickets: list[Ticket] = list(session.scalars(query.limit(QUEUE_LIMIT)))
    tickets.sort(key=lambda ticket: queue_order(ticket, now, timezone))
    rows = [(ticket, current_clock(ticket, now, timezone)) for ticket in tickets]
    template = "_queue_rows.html" if request.headers.get("X-Partial") == "rows" else "queue.html"
    return render_template(
        template,
        rows=rows,
        args=args,
        categories=CATEGORY_LABELS,
        statuses=STATUS_LABELS,
        departments=DEPARTMENTS,
        limit=QUEUE_LIMIT,
    )
