"""The procedure's clocks, in the property's time zone: forward within one hour of the call, resolve the
same calendar day (原则上不过夜), follow up within the week."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from ivr.models import Ticket, TicketStatus

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
