"""The procedure's clocks around local midnight: the same-day clock ends at midnight in the property's time
zone (not UTC's), the one-hour clock runs across midnight, and a day with a clock change still ends at 24:00."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr.models import Category, Ticket, TicketStatus
from ivr.tickets.sla import SlaState, clocks, current_clock, end_of_local_day, queue_order

SHANGHAI = "Asia/Shanghai"  # UTC+8 all year: local midnight is 16:00 UTC the day before
LOCAL = ZoneInfo(SHANGHAI)


def ticket_called_at(moment: datetime, status: TicketStatus = TicketStatus.REGISTERED, **fields) -> Ticket:
    """A ticket with no call row: its clocks start when it was created."""
    return Ticket(number="261127001", category=Category.REPAIR, status=status, created_at=moment, **fields)


def by_name(ticket: Ticket, now: datetime, timezone: str = SHANGHAI) -> dict[str, tuple[datetime, SlaState]]:
    return {clock.name: (clock.due, clock.state) for clock in clocks(ticket, now, timezone)}


def test_a_call_just_after_local_midnight_is_due_by_the_end_of_that_local_day():
    called = datetime(2026, 11, 27, 0, 10, tzinfo=LOCAL)  # 2026-11-26 16:10 UTC
    due, state = by_name(ticket_called_at(called), called + timedelta(minutes=5))["resolve"]
    assert due == datetime(2026, 11, 27, 23, 59, 59, 999999, tzinfo=LOCAL)
    assert due.astimezone(ZoneInfo("UTC")) == datetime(2026, 11, 27, 15, 59, 59, 999999, tzinfo=ZoneInfo("UTC"))
    assert state == SlaState.ON_TIME


def test_a_call_late_in_the_evening_is_due_soon_then_overdue_at_local_midnight():
    called = datetime(2026, 11, 27, 23, 50, tzinfo=LOCAL)
    ticket = ticket_called_at(called)
    before_midnight = by_name(ticket, datetime(2026, 11, 27, 23, 59, 59, tzinfo=LOCAL))
    at_midnight = by_name(ticket, datetime(2026, 11, 28, 0, 0, 0, tzinfo=LOCAL))
    assert before_midnight["resolve"][1] == SlaState.DUE_SOON
    assert at_midnight["resolve"] == (datetime(2026, 11, 27, 23, 59, 59, 999999, tzinfo=LOCAL), SlaState.OVERDUE)
    # The one-hour forwarding clock runs on across midnight and is still on time at 00:00.
    assert at_midnight["dispatch"] == (datetime(2026, 11, 28, 0, 50, tzinfo=LOCAL), SlaState.ON_TIME)
    assert by_name(ticket, datetime(2026, 11, 28, 0, 40, tzinfo=LOCAL))["dispatch"][1] == SlaState.DUE_SOON
    assert by_name(ticket, datetime(2026, 11, 28, 0, 51, tzinfo=LOCAL))["dispatch"][1] == SlaState.OVERDUE


def test_the_clock_that_matters_after_midnight_is_the_overdue_same_day_clock_once_forwarded():
    called = datetime(2026, 11, 27, 23, 50, tzinfo=LOCAL)
    ticket = ticket_called_at(called, TicketStatus.DISPATCHED, department="工程部")
    now = datetime(2026, 11, 28, 0, 1, tzinfo=LOCAL)
    clock = current_clock(ticket, now, SHANGHAI)
    assert clock is not None and (clock.name, clock.state) == ("resolve", SlaState.OVERDUE)
    # In the queue it comes before a ticket called a minute after midnight, which is on time.
    fresh = ticket_called_at(datetime(2026, 11, 28, 0, 0, tzinfo=LOCAL), TicketStatus.DISPATCHED)
    assert queue_order(ticket, now, SHANGHAI) < queue_order(fresh, now, SHANGHAI)


@pytest.mark.parametrize(
    ("timezone", "day", "hours"),
    [
        ("America/New_York", datetime(2026, 11, 1), 25),  # clocks go back at 02:00
        ("America/New_York", datetime(2026, 3, 8), 23),  # clocks go forward at 02:00
    ],
)
def test_a_day_with_a_clock_change_still_ends_at_local_midnight(timezone, day, hours):
    zone = ZoneInfo(timezone)
    start = day.replace(minute=30, tzinfo=zone)  # 00:30 local
    end = end_of_local_day(start, timezone)
    assert end.astimezone(zone).replace(tzinfo=None) == day.replace(hour=23, minute=59, second=59, microsecond=999999)
    utc = ZoneInfo("UTC")  # (subtracting two times in one zone would compare their wall clocks)
    assert end.astimezone(utc) - start.astimezone(utc) == timedelta(hours=hours, minutes=-30, microseconds=-1)


def test_the_follow_up_clock_starts_when_the_ticket_is_resolved():
    called = datetime(2026, 11, 27, 23, 50, tzinfo=LOCAL)
    resolved = datetime(2026, 11, 28, 1, 0, tzinfo=LOCAL)
    ticket = ticket_called_at(called, TicketStatus.RESOLVED, resolved_at=resolved)
    clocks_now = by_name(ticket, resolved + timedelta(days=6, hours=12))
    assert clocks_now["resolve"][1] == SlaState.DONE  # resolved: done, even though after midnight
    assert clocks_now["follow_up"] == (resolved + timedelta(days=7), SlaState.DUE_SOON)
