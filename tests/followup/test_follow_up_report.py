"""The weekly follow-up report (回访周报) per property and department: due, done (on the call or by hand),
unreachable, opted out, the average keypad score and "not resolved", the inbound calls' score; each property's
weeks in its own time zone, counted in SQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr.access import TicketScope
from ivr.followup.report import (
    MAX_WEEKS,
    UNDISPATCHED,
    PropertyZones,
    ReportSpanError,
    chart_weeks,
    follow_up_report,
    property_zones,
    report_weeks,
    week_follow_ups,
    weekly_report,
    weekly_totals,
)
from ivr.models import Category, FollowUp, FollowUpState, Ticket, TicketStatus
from ivr.properties import property_directory, save_property
from ivr.qa.reports import WeekError, week_of
from tests.factories import create_ticket

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=SHANGHAI).astimezone(UTC)


def due_follow_up(
    database, created: str, state: FollowUpState, *, department: str = "工程部", property_id: int = 1, **fields
):
    """A follow-up that became due at `created` (local) for a ticket of that department and property."""
    followed_up_at = fields.pop("followed_up_at", None)
    ticket_id = create_ticket(
        database,
        status=TicketStatus.RESOLVED,
        department=department,
        property_id=property_id,
        followed_up_at=followed_up_at,
    )
    with database.session() as session:
        session.add(
            FollowUp(ticket_id=ticket_id, property_id=property_id, state=state, created_at=at(created), **fields)
        )


def report(
    database, start: str, end: str, scope: TicketScope | None = None, zones: PropertyZones | None = None
) -> dict[tuple, tuple]:
    with database.session(read_only=True) as session:
        rows = follow_up_report(session, start, end, zones or PropertyZones("Asia/Shanghai"), scope)
    return {
        (row.week, row.property_id, row.department): (
            row.tally.due,
            row.tally.done,
            row.tally.unreachable,
            row.tally.opted_out,
            row.tally.average_satisfaction,
            row.tally.not_resolved,
        )
        for row in rows
    }


def test_a_week_per_property_and_department(database):
    with database.session() as session:
        east = save_property(session, "east", name="东方花园").id
    # 2026-W49 is Monday 30 November to Sunday 6 December (Shanghai)
    due_follow_up(database, "2026-11-30 00:10", FollowUpState.DONE, resolved=True, satisfaction=4)
    due_follow_up(database, "2026-12-01 10:00", FollowUpState.DONE, resolved=False, satisfaction=2)
    due_follow_up(database, "2026-12-02 10:00", FollowUpState.UNREACHABLE, attempts=3)
    # unreachable by the line, then called back by hand and recorded on the ticket: done and unreachable
    due_follow_up(database, "2026-12-03 10:00", FollowUpState.UNREACHABLE, followed_up_at=at("2026-12-04 09:00"))
    due_follow_up(database, "2026-12-04 10:00", FollowUpState.OPTED_OUT)
    due_follow_up(database, "2026-12-06 23:50", FollowUpState.SCHEDULED)  # still due: counted, not done
    due_follow_up(
        database, "2026-12-02 11:00", FollowUpState.DONE, department="秩序维护部", resolved=True, satisfaction=5
    )
    due_follow_up(database, "2026-12-01 11:00", FollowUpState.DONE, property_id=east, resolved=True, satisfaction=3)
    due_follow_up(database, "2026-11-29 23:50", FollowUpState.DONE, resolved=True, satisfaction=1)  # W48
    due_follow_up(database, "2026-12-07 00:00", FollowUpState.DONE, resolved=True, satisfaction=1)  # W50

    assert report(database, "2026-W49", "2026-W49") == {
        ("2026-W49", 1, "工程部"): (6, 3, 2, 1, 3.0, 1),
        ("2026-W49", 1, "秩序维护部"): (1, 1, 0, 0, 5.0, 0),
        ("2026-W49", east, "工程部"): (1, 1, 0, 0, 3.0, 0),
    }
    weeks = report(database, "2026-W48", "2026-W50")
    assert weeks[("2026-W48", 1, "工程部")] == (1, 1, 0, 0, 1.0, 0)
    assert weeks[("2026-W50", 1, "工程部")] == (1, 1, 0, 0, 1.0, 0)
    assert report(database, "2026-W49", "2026-W49", TicketScope(properties=frozenset({east}))) == {
        ("2026-W49", east, "工程部"): (1, 1, 0, 0, 3.0, 0)
    }


def test_no_score_no_average_and_an_undispatched_ticket(database):
    due_follow_up(database, "2026-12-01 10:00", FollowUpState.UNREACHABLE, department=None)
    assert report(database, "2026-W49", "2026-W49") == {("2026-W49", 1, "未派单"): (1, 0, 1, 0, None, 0)}


def test_each_property_counts_its_own_local_weeks(database, settings):
    with database.session() as session:
        east = save_property(session, "east", name="东方花园").id  # no zone of its own: IVR_TIMEZONE (Shanghai)
        west = save_property(session, "west", name="西城花园", timezone="Asia/Urumqi").id  # two hours behind
    with database.session(read_only=True) as session:
        property_directory(session).reload()
        zones = property_zones(session, settings)
    assert zones == PropertyZones("Asia/Shanghai", {west: "Asia/Urumqi"})
    # The same moment: Monday 01:00 in Shanghai (2026-W50), still Sunday 23:00 in Urumqi (2026-W49).
    near_midnight = "2026-12-07 01:00"
    due_follow_up(database, near_midnight, FollowUpState.DONE, property_id=east, resolved=True, satisfaction=5)
    due_follow_up(database, near_midnight, FollowUpState.DONE, property_id=west, resolved=True, satisfaction=2)
    # Monday 00:30 in Urumqi is 02:30 in Shanghai: west's W50 starts two hours after east's.
    due_follow_up(database, "2026-12-07 02:30", FollowUpState.UNREACHABLE, property_id=west)

    assert report(database, "2026-W49", "2026-W50", zones=zones) == {
        ("2026-W50", east, "工程部"): (1, 1, 0, 0, 5.0, 0),
        ("2026-W49", west, "工程部"): (1, 1, 0, 0, 2.0, 0),
        ("2026-W50", west, "工程部"): (1, 0, 1, 0, None, 0),
    }
    assert report(database, "2026-W49", "2026-W49", zones=zones) == {("2026-W49", west, "工程部"): (1, 1, 0, 0, 2.0, 0)}
    # Counted in one zone for all, as before, the west one would be in the Shanghai week.
    assert ("2026-W50", west, "工程部") in report(database, "2026-W50", "2026-W50")
    with database.session(read_only=True) as session:
        this_week = week_follow_ups(session, "2026-W50", zones)
        west_only = week_follow_ups(session, "2026-W50", zones, TicketScope(properties=frozenset({west})))
    assert (this_week.due, this_week.done, this_week.to_do, this_week.unreachable) == (2, 1, 1, 1)
    assert (west_only.due, west_only.done, west_only.to_do, west_only.unreachable) == (1, 0, 1, 1)


def scored_ticket(database, created: str, score: int | None, *, department: str | None = "工程部", **fields) -> int:
    """A ticket created at `created` (Shanghai) whose caller gave `score` at the end of the call."""
    return create_ticket(database, department=department, created_at=at(created), call_satisfaction=score, **fields)


def test_the_inbound_score_is_averaged_in_the_week_the_ticket_was_created(database):
    for day, score in (("2026-11-30 00:05", 5), ("2026-12-02 09:00", 4), ("2026-12-06 23:55", 2)):
        scored_ticket(database, day, score)
    scored_ticket(database, "2026-12-02 10:00", None)  # not asked, or hung up: not counted
    scored_ticket(database, "2026-12-03 10:00", 3, department="秩序维护部")
    scored_ticket(database, "2026-12-03 11:00", 1, department=None)
    scored_ticket(database, "2026-11-29 23:55", 1)  # W48
    # A follow-up's score in the same row is the follow-up call's, kept apart.
    due_follow_up(database, "2026-12-01 10:00", FollowUpState.DONE, resolved=True, satisfaction=1)

    with database.session(read_only=True) as session:
        rows = follow_up_report(session, "2026-W48", "2026-W49", PropertyZones("Asia/Shanghai"))
    inbound = {
        (row.week, row.department): (
            row.tally.due,
            row.tally.average_satisfaction,
            row.tally.call_scores,
            row.tally.average_call_satisfaction,
        )
        for row in rows
    }
    assert inbound == {
        ("2026-W48", "工程部"): (0, None, 1, 1.0),
        ("2026-W49", "工程部"): (1, 1.0, 3, 3.7),  # (5 + 4 + 2) / 3
        ("2026-W49", "秩序维护部"): (0, None, 1, 3.0),
        ("2026-W49", UNDISPATCHED): (0, None, 1, 1.0),
    }
    assert [
        (week, tally.call_scores, tally.average_call_satisfaction)
        for week, tally in weekly_totals(rows, ["2026-W48", "2026-W49", "2026-W50"])
    ] == [
        ("2026-W48", 1, 1.0),
        ("2026-W49", 5, 3.0),  # (5 + 4 + 2 + 3 + 1) / 5
        ("2026-W50", 0, None),
    ]


def test_the_weeks_of_a_span_cross_the_year_and_a_span_is_bounded():
    assert report_weeks("2026-W52", "2027-W01") == ["2026-W52", "2026-W53", "2027-W01"]  # 2026 has 53 ISO weeks
    assert report_weeks("2026-W49", "2026-W48") == []
    with pytest.raises(ReportSpanError, match=f"最多统计 {MAX_WEEKS} 周"):
        report_weeks("2020-W01", "2026-W49")
    with pytest.raises(WeekError):
        report_weeks("2026-49", "2026-W49")


# The counts in SQL are the counts of each follow-up one by one (as the report counted them before) ------------

ZONES = ("Asia/Shanghai", "Asia/Tokyo", "Europe/London")  # London leaves summer time on Sunday 2026-10-25
SPAN = ("2026-W42", "2026-W45")


def counted_one_by_one(database, zones: PropertyZones, scope: TicketScope) -> dict[tuple, tuple]:
    """Each follow-up and each scored ticket in Python, in its property's zone."""
    weeks = set(report_weeks(*SPAN))
    counted: dict[tuple, list[int]] = {}

    def tally(moment: datetime, ticket: Ticket) -> list[int] | None:
        week = week_of(moment, zones.others.get(ticket.property_id, zones.default))
        if week not in weeks or not scope.contains(ticket):
            return None
        return counted.setdefault((week, ticket.property_id, ticket.department or UNDISPATCHED), [0] * 9)

    with database.session(read_only=True) as session:
        for follow_up in session.scalars(select_follow_ups()):
            ticket = follow_up.ticket
            if (row := tally(follow_up.created_at, ticket)) is None:
                continue
            row[0] += 1
            by_hand = ticket.followed_up_at is not None and ticket.followed_up_at >= follow_up.created_at
            row[1] += follow_up.state == FollowUpState.DONE or by_hand
            row[2] += follow_up.state == FollowUpState.UNREACHABLE
            row[3] += follow_up.state == FollowUpState.OPTED_OUT
            row[4] += follow_up.resolved is False
            if follow_up.satisfaction is not None:
                row[5] += 1
                row[6] += follow_up.satisfaction
        for ticket in session.scalars(select_scored_tickets()):
            if (row := tally(ticket.created_at, ticket)) is not None:
                row[7] += 1
                row[8] += ticket.call_satisfaction
    return {key: tuple(values) for key, values in counted.items()}


def select_follow_ups():
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    return select(FollowUp).options(selectinload(FollowUp.ticket))


def select_scored_tickets():
    from sqlalchemy import select

    return select(Ticket).where(Ticket.call_satisfaction.is_not(None))


def seed_around_midnights(database, prop_ids: list[int], zones: PropertyZones, count: int) -> None:
    """`count` follow-ups of random tickets, half of them within 90 minutes of some property's week boundary."""
    rng = random.Random(12)
    boundaries = [
        datetime.fromisocalendar(2026, week, 1).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
        for week in range(42, 47)
        for zone in ZONES
    ]
    states = list(FollowUpState)
    with database.session() as session:
        for index in range(count):
            if index % 2:
                moment = rng.choice(boundaries) + timedelta(minutes=rng.randint(-90, 90))
            else:
                moment = datetime(2026, 10, 10, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 34 * 24 * 60))
            by_hand = rng.choice([None, moment - timedelta(hours=2), moment + timedelta(hours=5)])
            ticket = Ticket(
                number=f"R{index:05d}",
                category=Category.REPAIR,
                status=TicketStatus.RESOLVED,
                property_id=rng.choice(prop_ids),
                department=rng.choice(["工程部", "秩序维护部", None]),
                followed_up_at=by_hand,
                created_at=moment - timedelta(minutes=rng.randint(0, 3 * 24 * 60)),
                call_satisfaction=rng.choice([None, None, 1, 2, 3, 4, 5]),
            )
            session.add(ticket)
            session.add(
                FollowUp(
                    ticket=ticket,
                    property_id=ticket.property_id,
                    state=rng.choice(states),
                    resolved=rng.choice([None, True, False]),
                    satisfaction=rng.choice([None, 1, 2, 3, 4, 5]),
                    created_at=moment,
                )
            )


def test_the_counts_in_sql_are_those_of_each_follow_up_counted_one_by_one(database):
    with database.session() as session:
        tokyo = save_property(session, "tokyo", name="东京花园", timezone="Asia/Tokyo").id
        london = save_property(session, "london", name="伦敦花园", timezone="Europe/London").id
    zones = PropertyZones("Asia/Shanghai", {tokyo: "Asia/Tokyo", london: "Europe/London"})
    seed_around_midnights(database, [1, tokyo, london], zones, 300)

    for scope in (TicketScope(), TicketScope(properties=frozenset({london})), TicketScope(frozenset({"工程部"}))):
        with database.session(read_only=True) as session:
            rows = follow_up_report(session, *SPAN, zones, scope)
        found = {
            (row.week, row.property_id, row.department): (
                row.tally.due,
                row.tally.done,
                row.tally.unreachable,
                row.tally.opted_out,
                row.tally.not_resolved,
                row.tally.scores,
                row.tally.score_total,
                row.tally.call_scores,
                row.tally.call_score_total,
            )
            for row in rows
        }
        expected = counted_one_by_one(database, zones, scope)
        assert found == expected
        assert [(row.week, row.property_id, row.department) for row in rows] == sorted(expected)
        # The chart's weekly figures, counted without the tickets' departments, are the rows summed.
        with database.session(read_only=True) as session:
            weekly = weekly_report(session, *SPAN, zones, scope)
        assert weekly == weekly_totals(rows, report_weeks(*SPAN))
        assert sum(tally.due for _, tally in weekly) == sum(counts[0] for counts in expected.values())
    assert sum(row[0] for row in counted_one_by_one(database, zones, TicketScope()).values()) > 150


def test_the_chart_keeps_past_weeks_a_few_minutes_and_counts_this_week_every_time(database):
    """The 周报 chart's weeks before this one are counted at most PAST_WEEKS_FRESH_FOR ago; this week's column, the
    week's table and the CSV are always counted afresh."""
    zones = PropertyZones("Asia/Shanghai")
    due_follow_up(database, "2026-11-25 10:00", FollowUpState.DONE)  # 2026-W48
    due_follow_up(database, "2026-12-01 10:00", FollowUpState.DONE)  # 2026-W49, this week

    def chart(minutes: float) -> dict[str, int]:
        with database.session(read_only=True) as session:
            now = at("2026-12-01 12:00") + timedelta(minutes=minutes)
            return {week: tally.due for week, tally in chart_weeks(session, "2026-W48", "2026-W49", zones, None, now)}

    assert chart(0) == {"2026-W48": 1, "2026-W49": 1}
    due_follow_up(database, "2026-11-26 10:00", FollowUpState.DONE)
    due_follow_up(database, "2026-12-01 11:00", FollowUpState.DONE)
    assert chart(4) == {"2026-W48": 1, "2026-W49": 2}  # last week as counted 4 minutes ago; this week now
    assert report(database, "2026-W48", "2026-W48")[("2026-W48", 1, "工程部")][0] == 2  # the table: exact
    assert chart(5) == {"2026-W48": 2, "2026-W49": 2}
