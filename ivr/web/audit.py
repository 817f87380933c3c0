"""The audit in the console: who the reader of a console request is, and the admins' page of who listened
to and read what, when and from where (newest first, filtered, a page at a time)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from ivr.access import READ_AUDIT, audit_access
from ivr.audit import ACTION_LABELS, LISTEN_WINDOW, VIA_LABELS, Reader, audit_query, describe_detail
from ivr.models import Ticket
from ivr.runtime import current_settings, request_session
from ivr.web.access import enforce, roles_required
from ivr.web.blueprint import blueprint
from ivr.web.paging import PAGE_SIZE, last_page, offset, page, requested_page


def console_reader() -> Reader:
    """The logged-in staff member, from the client's address (the proxy's client when IVR_TRUSTED_PROXIES is set)."""
    return Reader(actor=current_user.username, via="console", user_id=current_user.id, remote_addr=request.remote_addr)


def _local_day_start(value: str, timezone: str) -> datetime | None:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(timezone))


@blueprint.get("/audit")
@roles_required(*READ_AUDIT)
def audit_log() -> ResponseReturnValue:
    """Filters: user (username or token:<name>), recording (RecordingSid), action, since and until (local
    dates, until inclusive); `page` from 1."""
    enforce(audit_access(current_user))
    args = {key: request.args.get(key, "").strip() for key in ("user", "recording", "action", "since", "until")}
    timezone = current_settings().timezone
    since = _local_day_start(args["since"], timezone)
    until = _local_day_start(args["until"], timezone)
    query = audit_query(
        user=args["user"] or None,
        recording=args["recording"] or None,
        action=args["action"] if args["action"] in ACTION_LABELS else None,
        since=since,
        until=until + timedelta(days=1) if until else None,
    )
    session = request_session()  # reads only
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    number = min(requested_page(request.args.get("page")), last_page(total))
    events = list(session.scalars(query.limit(PAGE_SIZE).offset(offset(number))))
    kept: dict[str, Any] = {key: value for key, value in args.items() if value}
    ticket_ids = {event.ticket_id for event in events if event.ticket_id is not None}
    numbers = {
        ticket_id: ticket_number
        for ticket_id, ticket_number in session.execute(
            select(Ticket.id, Ticket.number).where(Ticket.id.in_(ticket_ids))
        )
    }
    return render_template(
        "audit.html",
        events=events,
        filters=args,
        actions=ACTION_LABELS,
        vias=VIA_LABELS,
        numbers=numbers,
        describe=describe_detail,
        page=page(number, len(events), total, lambda n: url_for("console.audit_log", page=n, **kept)),
        window_minutes=int(LISTEN_WINDOW.total_seconds() // 60),
    )
