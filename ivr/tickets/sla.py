"""The procedure's clocks, in the property's time zone: forward within one hour of the call, resolve the
same calendar day (原则上不过夜), follow up within the week."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, event, inspect, literal_column
from sqlalchemy.orm import InstanceState, Session

from ivr.models import Call, Ticket, TicketStatus

DISPATCH_WITHIN = timedelta(hours=1)
FOLLOW_UP_WITHIN = timedelta(days=7)
DISPATCH_WARNING = timedelta(minutes=15)
RESOLVE_WARNING = timedelta(hours=2)

BEFORE_DISPATCH = {TicketStatus.REGISTERED}
BEFORE_RESOLVED = {TicketStatus.REGISTERED, TicketStatus.DISPATCHED, TicketStatus.IN_PROGRESS, TicketStatus.ANALYSED}
AWAITING_FOLLOW_UP = {TicketStatus.RESOLVED, TicketStatus.REPLIED}


class SlaState(enum.StrEnum):
    ON_TIME = "on_time"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    DONE = "done"


SLA_LABELS = {
    SlaState.ON_TIME: "按时",
    SlaState.DUE_SOON: "即将到期",
    SlaState.OVERDUE: "已超时",
    SlaState.DONE: "已完成",
}


@dataclass(frozen=True)
class Clock:
    """One deadline of a ticket and where it stands."""

    name: str  # dispatch | resolve | follow_up
    label: str
    due: datetime
    state: SlaState


def called_at(ticket: Ticket) -> datetime:
    """When the matter reached us: the call's start, else the ticket's creation."""
    return ticket.call.started_at if ticket.call is not None else ticket.created_at


def end_of_local_day(moment: datetime, timezone: str) -> datetime:
    """The last instant of `moment`'s calendar day in the property's time zone (as UTC-aware)."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    return datetime.combine(local.date() + timedelta(days=1), time.min, tzinfo=zone) - timedelta(microseconds=1)


def _state(due: datetime, now: datetime, warning: timedelta, finished: bool) -> SlaState:
    if finished:
        return SlaState.DONE
    if now > due:
        return SlaState.OVERDUE
    return SlaState.DUE_SOON if due - now <= warning else SlaState.ON_TIME


def clocks(ticket: Ticket, now: datetime, timezone: str) -> list[Clock]:
    """The ticket's deadlines: dispatch (one hour), resolve (same day), follow-up (a week after resolving)."""
    start = called_at(ticket)
    result = [
        Clock(
            "dispatch",
            "一小时内转交",
            start + DISPATCH_WITHIN,
            _state(start + DISPATCH_WITHIN, now, DISPATCH_WARNING, ticket.status not in BEFORE_DISPATCH),
        ),
        Clock(
            "resolve",
            "当天处理完毕",
            end_of_local_day(start, timezone),
            _state(end_of_local_day(start, timezone), now, RESOLVE_WARNING, ticket.status not in BEFORE_RESOLVED),
        ),
    ]
    if ticket.resolved_at is not None:
        due = ticket.resolved_at + FOLLOW_UP_WITHIN
        result.append(
            Clock(
                "follow_up",
                "一周内回访",
                due,
                _state(due, now, timedelta(days=1), ticket.status not in AWAITING_FOLLOW_UP),
            )
        )
    return result


def current_clock(ticket: Ticket, now: datetime, timezone: str) -> Clock | None:
    """The clock that matters now: the first one still running (None when all are done or closed)."""
    if ticket.status == TicketStatus.CLOSED:
        return None
    return next((clock for clock in clocks(ticket, now, timezone) if clock.state != SlaState.DONE), None)


_URGENCY = {SlaState.OVERDUE: 0, SlaState.DUE_SOON: 1, SlaState.ON_TIME: 2, SlaState.DONE: 3}


def queue_order(ticket: Ticket, now: datetime, timezone: str) -> tuple[int, int, datetime]:
    """Sort key for the night queue: urgent first, then overdue, due soon, on time, then earliest deadline."""
    clock = current_clock(ticket, now, timezone)
    far = datetime.max.replace(tzinfo=now.tzinfo)
    return (
        0 if ticket.urgent and ticket.status != TicketStatus.CLOSED else 1,
        _URGENCY[clock.state] if clock else 4,
        clock.due if clock else far,
    )


# The clocks as stored deadlines ------------------------------------------------------------------------------
#
# The queue's order and the overview's counts are computed in the database, so each ticket carries its
# deadlines (`dispatch_due`, `resolve_due`, `follow_up_due`) and the clock running now (`sla_due`, `sla_warn_at`:
# when it falls due and when it starts to be "due soon"). They are stamped before every flush that writes a
# ticket (or moves its call's start), whoever writes it (the line, the procedure, the API, test factories), so no writer
# has to remember. "Not overnight" is a local-time idea: the time zone is the ticket's property's when it has one
# (`use_property_timezones`, kept by ivr.properties whenever it reads the properties), else the app's
# (`use_timezone`, set by create_app).

_WARNINGS = {"dispatch": DISPATCH_WARNING, "resolve": RESOLVE_WARNING, "follow_up": timedelta(days=1)}
_clock_zone = {"name": "Asia/Shanghai"}
_property_zones: dict[int, str] = {}


def use_timezone(timezone: str) -> None:
    """The time zone in which tickets written from now on get their same-day deadline."""
    _clock_zone["name"] = timezone


def use_property_timezones(zones: dict[int, str]) -> None:
    """The properties that have a time zone of their own (property id → zone)."""
    _property_zones.clear()
    _property_zones.update(zones)


def property_timezone(property_id: int | None, default: str) -> str:
    """The property's own time zone, else `default` (the app's)."""
    return _property_zones.get(property_id, default) if property_id is not None else default


def stamp_clocks(ticket: Ticket, timezone: str | None = None) -> None:
    """Store the ticket's deadlines and its running clock (see above)."""
    zone = timezone or property_timezone(ticket.property_id, _clock_zone["name"])
    call = ticket.call
    start = call.started_at if call is not None and call.started_at is not None else ticket.created_at
    if start is None:  # a new ticket before its column default: it is being created now
        start = ticket.created_at = datetime.now(UTC)
    ticket.dispatch_due = start + DISPATCH_WITHIN
    ticket.resolve_due = end_of_local_day(start, zone)
    ticket.follow_up_due = ticket.resolved_at + FOLLOW_UP_WITHIN if ticket.resolved_at is not None else None
    status = ticket.status or TicketStatus.REGISTERED  # a new ticket before its column default
    running: tuple[str, datetime | None] | None = None
    if status in BEFORE_DISPATCH:
        running = ("dispatch", ticket.dispatch_due)
    elif status in BEFORE_RESOLVED:
        running = ("resolve", ticket.resolve_due)
    elif status in AWAITING_FOLLOW_UP and ticket.follow_up_due is not None:
        running = ("follow_up", ticket.follow_up_due)
    if running is None or running[1] is None:
        ticket.sla_due = ticket.sla_warn_at = None
    else:
        ticket.sla_due = running[1]
        ticket.sla_warn_at = running[1] - _WARNINGS[running[0]]


# What the clocks are computed from: a ticket written without a change to these keeps its stamp (and the
# webhooks that touch a ticket pay no extra statement for it).
_CLOCK_INPUTS = ("status", "resolved_at", "created_at", "call_id", "call")


def _moved(thing: Ticket | Call, names: tuple[str, ...]) -> bool:
    state: InstanceState[Any] = inspect(thing)
    return any(state.attrs[name].history.has_changes() for name in names)


@event.listens_for(Session, "before_flush")
def _stamp_before_flush(session: Session, _context: object, _instances: object) -> None:
    """Every ticket written new or with a change to its clocks' inputs, and the ticket of a call whose start
    moved, gets its clocks stamped."""
    for thing in session.new:
        if isinstance(thing, Ticket):
            stamp_clocks(thing)
    for thing in session.dirty:
        if isinstance(thing, Ticket) and _moved(thing, _CLOCK_INPUTS):
            stamp_clocks(thing)
        elif isinstance(thing, Call) and _moved(thing, ("started_at",)) and thing.ticket is not None:
            stamp_clocks(thing.ticket)


def open_tickets() -> ColumnElement[bool]:
    """Not closed, written as a literal so that both databases see the open-queue partial index serves it."""
    return Ticket.__table__.c.status != literal_column("'closed'")


def queue_order_by(now: datetime) -> list[ColumnElement[Any]]:
    """The night queue's order in SQL, as `queue_order`: urgent open tickets first, then the running clock
    overdue, due soon, on time (earliest deadline first), then tickets with no clock running, newest first."""
    urgent_first = case((and_(Ticket.urgent.is_(True), open_tickets()), 0), else_=1)
    by_state = case(
        (Ticket.sla_due.is_(None), 3),
        (Ticket.sla_due < now, 0),
        (Ticket.sla_warn_at <= now, 1),
        else_=2,
    )
    return [urgent_first, by_state, Ticket.sla_due.asc(), Ticket.created_at.desc(), Ticket.id.desc()]
