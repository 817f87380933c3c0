"""The weekly follow-up report (回访周报) per property and department: how many tickets were due a follow-up,
how many were followed up, how many the line could not reach, the residents' average score and how many said
"not resolved". No Flask here.

A week's row counts the follow-ups that became due that week (created when the ticket was resolved, or a
complaint replied to), whatever became of them since: a follow-up due on Sunday and answered on Monday is in
Sunday's week as done. Done is answered on the call, or followed up by hand on the ticket since (the ticket's
回访 step); unreachable is the line giving up (attempts used up, no number to call, a refused number), whether
or not someone called back by hand since; the average is of the keypad scores (1–5) of the week's calls.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, contains_eager

from ivr.access import TicketScope
from ivr.models import FollowUp, FollowUpState, Ticket
from ivr.qa.reports import week_of

UNDISPATCHED = "未派单"  # the department of a ticket resolved without being forwarded


@dataclass
class FollowUpTally:
    """One week of one property's department."""

    due: int = 0
    done: int = 0
    unreachable: int = 0
    opted_out: int = 0
    not_resolved: int = 0
    scores: int = 0  # how many calls gave a score
    score_total: int = 0

    @property
    def average_satisfaction(self) -> float | None:
        """The average keypad score (1–5, one decimal), None when no call gave one."""
        return round(self.score_total / self.scores, 1) if self.scores else None


@dataclass(frozen=True)
class FollowUpReportRow:
    week: str  # ISO week, e.g. 2026-W49
    property_id: int
    department: str
    tally: FollowUpTally


def follow_up_report(
    session: Session, begin: datetime, end: datetime, timezone: str, scope: TicketScope | None = None
) -> list[FollowUpReportRow]:
    """The rows for the follow-ups due from `begin` to `end` (UTC, end excluded), by local ISO week in
    `timezone`, property and department, in that order; `scope` narrows to the tickets someone may see."""
    query: Select[Any] = (
        select(FollowUp)
        .join(FollowUp.ticket)
        .where(FollowUp.created_at >= begin, FollowUp.created_at < end)
        .options(contains_eager(FollowUp.ticket).load_only(Ticket.department, Ticket.followed_up_at))
    )
    if scope is not None:
        query = scope.where(query)
    tallies: defaultdict[tuple[str, int, str], FollowUpTally] = defaultdict(FollowUpTally)
    for follow_up in session.scalars(query):
        ticket = follow_up.ticket
        week = week_of(follow_up.created_at, timezone)
        tally = tallies[(week, follow_up.property_id, ticket.department or UNDISPATCHED)]
        tally.due += 1
        by_hand = ticket.followed_up_at is not None and ticket.followed_up_at >= follow_up.created_at
        tally.done += follow_up.state == FollowUpState.DONE or by_hand
        tally.unreachable += follow_up.state == FollowUpState.UNREACHABLE
        tally.opted_out += follow_up.state == FollowUpState.OPTED_OUT
        tally.not_resolved += follow_up.resolved is False
        if follow_up.satisfaction is not None:
            tally.scores += 1
            tally.score_total += follow_up.satisfaction
    return [
        FollowUpReportRow(week, prop, department, tallies[(week, prop, department)])
        for week, prop, department in sorted(tallies)
    ]
