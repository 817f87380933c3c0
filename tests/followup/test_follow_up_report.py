"""The weekly follow-up report (回访周报) per property and department: due, done (on the call or by hand),
unreachable, opted out, the average keypad score and "not resolved"."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ivr.access import TicketScope
from ivr.followup.report import follow_up_report
from ivr.models import FollowUp, FollowUpState, TicketStatus
from ivr.properties import save_property
from ivr.qa.reports import week_bounds
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


def report(database, start: str, end: str, scope: TicketScope | None = None) -> dict[tuple, tuple]:
    begin, _ = week_bounds(start, "Asia/Shanghai")
    _, finish = week_bounds(end, "Asia/Shanghai")
    with database.session(read_only=True) as session:
        rows = follow_up_report(session, begin, finish, "Asia/Shanghai", scope)
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
