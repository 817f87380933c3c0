"""The weekly follow-up report (回访周报) per property and department: how many tickets were due a follow-up,
how many were followed up, how many the line could not reach, the residents' average score and how many said
"not resolved", and the callers' own score of the inbound call that reported a ticket. No Flask here.

A week's row counts the follow-ups that became due that week (created when the ticket was resolved, or a
complaint replied to), whatever became of them since: a follow-up due on Sunday and answered on Monday is in
Sunday's week as done. Done is answered on the call, or followed up by hand on the ticket since (the ticket's
回访 step); unreachable is the line giving up (attempts used up, no number to call, a refused number), whether
or not someone called back by hand since; the average is of the keypad scores (1–5) of the week's calls. The
inbound score (`Ticket.call_satisfaction`, asked at the end of the call that reported the ticket) is counted in
the week the ticket was created, under the ticket's department now.

Weeks are each property's own: Monday 00:00 to Monday 00:00 in its time zone (its own, else IVR_TIMEZONE), so a
follow-up at 23:30 on a Sunday in Shanghai is in that week there and in the next one for a property an hour
ahead. The counting is done in the database, grouped by week, property and department, so the console reads a
few dozen rows however many follow-ups there are. A local week is not portable SQL (SQLite and PostgreSQL have
no common time-zone arithmetic), so Python computes each zone's week boundaries as UTC moments and the query
numbers the weeks with a CASE over them (`created_at < boundary THEN week`), one set of boundaries per time zone
in use: properties in IVR_TIMEZONE (all of them today) share the default set and add no condition of their own.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, and_, case, func, literal, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from ivr.access import TicketScope
from ivr.config import Settings
from ivr.db import utcnow
from ivr.models import FollowUp, FollowUpState, Ticket
from ivr.properties import all_properties
from ivr.qa.reports import WeekError, week_bounds, week_of

UNDISPATCHED = "未派单"  # the department of a ticket resolved without being forwarded
MAX_WEEKS = 106  # the longest span one report counts (two years and some): each week is a CASE branch


class ReportSpanError(WeekError):
    """A span of more weeks than one report counts."""


@dataclass
class FollowUpTally:
    """One week of one property's department (or a sum of them)."""

    due: int = 0
    done: int = 0
    unreachable: int = 0
    opted_out: int = 0
    not_resolved: int = 0
    scores: int = 0  # how many follow-up calls gave a score
    score_total: int = 0
    call_scores: int = 0  # how many of the week's tickets got a score at the end of the inbound call
    call_score_total: int = 0

    @property
    def to_do(self) -> int:
        """Due and not followed up yet, on the call or by hand (unreachable and opted out included)."""
        return self.due - self.done

    @property
    def average_satisfaction(self) -> float | None:
        """The follow-up calls' average keypad score (1–5, one decimal), None when no call gave one."""
        return round(self.score_total / self.scores, 1) if self.scores else None

    @property
    def average_call_satisfaction(self) -> float | None:
        """The inbound calls' average score (1–5, one decimal), None when no caller gave one."""
        return round(self.call_score_total / self.call_scores, 1) if self.call_scores else None

    def add(self, other: FollowUpTally) -> None:
        """Count `other` in too (a week's total over properties and departments)."""
        for counted in fields(FollowUpTally):
            setattr(self, counted.name, getattr(self, counted.name) + getattr(other, counted.name))


@dataclass(frozen=True)
class FollowUpReportRow:
    week: str  # ISO week, e.g. 2026-W49
    property_id: int
    department: str
    tally: FollowUpTally


@dataclass(frozen=True)
class PropertyZones:
    """The time zone of each property's weeks: `default` (IVR_TIMEZONE) for every property not in `others`."""

    default: str
    others: Mapping[int, str] = field(default_factory=dict)  # property id -> a zone other than the default


def property_zones(session: Session, settings: Settings) -> PropertyZones:
    """Each property's zone as the line uses it (its own, else the settings'), from the property directory."""
    return PropertyZones(
        settings.timezone,
        {line.id: line.timezone for line in all_properties(session, settings) if line.timezone != settings.timezone},
    )


def current_week(timezone: str) -> str:
    """This week's ISO week in the console's time zone (each property then counts it in its own)."""
    return week_of(utcnow(), timezone)


def report_weeks(first: str, last: str) -> list[str]:
    """The ISO weeks from `first` to `last`, both included (none when `last` is before `first`); WeekError for a
    week not written as one, ReportSpanError for more than MAX_WEEKS."""
    try:
        first_year, first_number = first.split("-W")
        last_year, last_number = last.split("-W")
        monday = date.fromisocalendar(int(first_year), int(first_number), 1)
        last_monday = date.fromisocalendar(int(last_year), int(last_number), 1)
    except ValueError as exc:
        raise WeekError(f"周的格式应为 2024-W10,收到 {first!r} 至 {last!r}") from exc
    count = (last_monday - monday).days // 7 + 1
    if count > MAX_WEEKS:
        raise ReportSpanError(f"一次最多统计 {MAX_WEEKS} 周,{first} 至 {last} 共 {count} 周")
    weeks = [monday + timedelta(weeks=n) for n in range(max(count, 0))]
    return [f"{day.isocalendar()[0]}-W{day.isocalendar()[1]:02d}" for day in weeks]


def _zone_weeks(
    created: InstrumentedAttribute[Any], weeks: Sequence[str], zone: str
) -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """For rows in `zone`: the index in `weeks` of the local week `created` falls in, and the condition that it
    falls in one of them."""
    starts = [week_bounds(week, zone)[0] for week in weeks]
    end = week_bounds(weeks[-1], zone)[1]
    index: ColumnElement[Any] = literal(0)
    if len(weeks) > 1:
        index = case(*((created < start, number) for number, start in enumerate(starts[1:])), else_=len(weeks) - 1)
    return index, and_(created >= starts[0], created < end)


def _local_week(
    created: InstrumentedAttribute[Any],
    property_id: InstrumentedAttribute[int],
    weeks: Sequence[str],
    zones: PropertyZones,
) -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """The index in `weeks` of the week a row falls in, in its property's zone, and the condition that it falls
    in one: the default zone's boundaries for most properties, each other zone's for its own."""
    by_zone: dict[str, list[int]] = {}
    for prop, zone in zones.others.items():
        if zone != zones.default:
            by_zone.setdefault(zone, []).append(prop)
    index, within = _zone_weeks(created, weeks, zones.default)
    if not by_zone:
        return index, within
    branches, conditions = [], []
    for zone, props in sorted(by_zone.items()):
        in_zone = property_id.in_(sorted(props))
        zone_index, zone_within = _zone_weeks(created, weeks, zone)
        branches.append((in_zone, zone_index))
        conditions.append(and_(in_zone, zone_within))
    others = property_id.not_in(sorted(prop for props in by_zone.values() for prop in props))
    # The span of every zone's weeks first: one range for an index on `created` to read, the zones' then sift it.
    edges = [week_bounds(week, zone) for zone in (zones.default, *by_zone) for week in (weeks[0], weeks[-1])]
    span = and_(created >= min(start for start, _ in edges), created < max(end for _, end in edges))
    return case(*branches, else_=index), and_(span, or_(*conditions, and_(others, within)))


def follow_up_counts(weeks: Sequence[str], zones: PropertyZones, scope: TicketScope | None) -> Select[Any]:
    """Per week (its index), property and department: due, done, unreachable, opted out, not resolved, how
    many scores and their sum, over the follow-ups that became due in the weeks."""
    week, within = _local_week(FollowUp.created_at, FollowUp.property_id, weeks, zones)
    rows: Select[Any] = (
        select(
            week.label("week"),
            FollowUp.property_id,
            Ticket.department,
            FollowUp.state,
            FollowUp.resolved,
            FollowUp.satisfaction,
            FollowUp.created_at,
            Ticket.followed_up_at,
        )
        # "+ 0": each follow-up finds its ticket by id, rather than SQLite reading a property's (or a department's)
        # tickets through their index and looking up each one's follow-ups: a week has far fewer follow-ups.
        .join(Ticket, Ticket.id == FollowUp.ticket_id + 0)
        .where(within)
    )
    if scope is not None:
        rows = scope.where(rows)
    # Grouped outside: PostgreSQL would not match a GROUP BY CASE with its own parameters to the selected one.
    found = rows.subquery("due_follow_ups")
    done = or_(found.c.state == FollowUpState.DONE, found.c.followed_up_at >= found.c.created_at)
    return select(found.c.week, found.c.property_id, found.c.department, *_tally_columns(found, done)).group_by(
        found.c.week, found.c.property_id, found.c.department
    )


def weekly_follow_up_counts(
    weeks: Sequence[str], zones: PropertyZones, properties: frozenset[int] | None
) -> Select[Any]:
    """Per week (its index) over every department: the counts of `follow_up_counts` without reading each
    follow-up's ticket for its department (the chart's figures). Only a follow-up not answered on the call looks
    at its ticket, for a follow-up by hand since; `properties` narrows (None: every property)."""
    week, within = _local_week(FollowUp.created_at, FollowUp.property_id, weeks, zones)
    by_hand = (
        select(Ticket.id).where(Ticket.id == FollowUp.ticket_id, Ticket.followed_up_at >= FollowUp.created_at).exists()
    )
    done = case((FollowUp.state == FollowUpState.DONE, literal(1)), (by_hand, literal(1)), else_=literal(0))
    rows: Select[Any] = select(
        week.label("week"), FollowUp.state, FollowUp.resolved, FollowUp.satisfaction, done.label("done")
    ).where(within)
    if properties is not None:
        rows = rows.where(FollowUp.property_id.in_(sorted(properties)))
    found = rows.subquery("due_follow_ups")
    return select(found.c.week, *_tally_columns(found, found.c.done == 1)).group_by(found.c.week)


def _tally_columns(found: Any, done: ColumnElement[bool]) -> list[ColumnElement[Any]]:
    """A FollowUpTally's counts (due, done, unreachable, opted out, not resolved, scores, their sum) over the rows
    of `found`, a subquery with the follow-ups' state, resolved and satisfaction."""
    return [
        func.count(),
        func.count().filter(done),
        func.count().filter(found.c.state == FollowUpState.UNREACHABLE),
        func.count().filter(found.c.state == FollowUpState.OPTED_OUT),
        func.count().filter(found.c.resolved.is_(False)),
        func.count(found.c.satisfaction),
        func.coalesce(func.sum(found.c.satisfaction), 0),
    ]


def call_satisfaction_counts(weeks: Sequence[str], zones: PropertyZones, scope: TicketScope | None) -> Select[Any]:
    """Per week (its index), property and department: how many tickets created that week got an inbound score,
    and their sum."""
    week, within = _local_week(Ticket.created_at, Ticket.property_id, weeks, zones)
    rows: Select[Any] = select(
        week.label("week"), Ticket.property_id, Ticket.department, Ticket.call_satisfaction
    ).where(within, Ticket.call_satisfaction.is_not(None))
    if scope is not None:
        rows = scope.where(rows)
    found = rows.subquery("scored_tickets")
    return select(
        found.c.week,
        found.c.property_id,
        found.c.department,
        func.count(),
        func.sum(found.c.call_satisfaction),
    ).group_by(found.c.week, found.c.property_id, found.c.department)


Key = tuple[int, int, str]  # week index, property id, department


def _tallies(
    session: Session, weeks: Sequence[str], zones: PropertyZones, scope: TicketScope | None, *, inbound: bool
) -> dict[Key, FollowUpTally]:
    tallies: dict[Key, FollowUpTally] = {}

    def tally(week: int, prop: int, department: str | None) -> FollowUpTally:
        return tallies.setdefault((int(week), prop, department or UNDISPATCHED), FollowUpTally())

    if not weeks:
        return tallies
    for week, prop, department, due, done, unreachable, opted_out, not_resolved, scores, total in session.execute(
        follow_up_counts(weeks, zones, scope)
    ):
        found = FollowUpTally(due, done, unreachable, opted_out, not_resolved, scores, int(total))
        tally(week, prop, department).add(found)  # added: a department literally named 未派单 meets None's
    if inbound:
        for week, prop, department, scores, total in session.execute(call_satisfaction_counts(weeks, zones, scope)):
            kept = tally(week, prop, department)
            kept.call_scores += int(scores)
            kept.call_score_total += int(total)
    return tallies


def follow_up_report(
    session: Session, first: str, last: str, zones: PropertyZones, scope: TicketScope | None = None
) -> list[FollowUpReportRow]:
    """The rows from ISO week `first` to `last` (both included), each property's weeks in its own zone, by week,
    property and department in that order; `scope` narrows to the tickets someone may see. Two queries: the
    follow-ups, the inbound scores. WeekError for a week that is not one or a span too long."""
    weeks = report_weeks(first, last)
    tallies = _tallies(session, weeks, zones, scope, inbound=True)
    return [
        FollowUpReportRow(weeks[week], prop, department, tallies[(week, prop, department)])
        for week, prop, department in sorted(tallies)
    ]


def week_follow_ups(
    session: Session, week: str, zones: PropertyZones, scope: TicketScope | None = None
) -> FollowUpTally:
    """The week's follow-ups over every property and department in `scope` (the overview's 本周待回访): one
    query, no inbound scores."""
    total = FollowUpTally()
    for tally in _tallies(session, report_weeks(week, week), zones, scope, inbound=False).values():
        total.add(tally)
    return total


def weekly_report(
    session: Session, first: str, last: str, zones: PropertyZones, scope: TicketScope | None = None
) -> list[tuple[str, FollowUpTally]]:
    """Each week from `first` to `last` summed over properties and departments (the chart's figures): the
    follow-ups counted by week alone (`weekly_follow_up_counts`: no ticket read for its department), the inbound
    scores summed from their query. A scope of some departments counts through the report's rows instead."""
    weeks = report_weeks(first, last)
    if scope is not None and scope.departments is not None:
        return weekly_totals(follow_up_report(session, first, last, zones, scope), weeks)
    totals = [(week, FollowUpTally()) for week in weeks]
    if not weeks:
        return totals
    properties = scope.properties if scope is not None else None
    for week, *counts in session.execute(weekly_follow_up_counts(weeks, zones, properties)):
        due, done, unreachable, opted_out, not_resolved, scores, total = (int(count) for count in counts)
        totals[int(week)][1].add(FollowUpTally(due, done, unreachable, opted_out, not_resolved, scores, total))
    for week, _, _, scores, total in session.execute(call_satisfaction_counts(weeks, zones, scope)):
        tally = totals[int(week)][1]
        tally.call_scores += int(scores)
        tally.call_score_total += int(total)
    return totals


# The chart's weeks before this one, as counted at most this long ago (per database and scope): they change little
# (a retry, a follow-up by hand), and counting 7 weeks of follow-ups on every visit is most of the 周报 page's time.
PAST_WEEKS_FRESH_FOR = timedelta(minutes=5)
_past_weeks: weakref.WeakKeyDictionary[Engine, dict[Hashable, tuple[datetime, list[tuple[str, FollowUpTally]]]]] = (
    weakref.WeakKeyDictionary()
)
_past_weeks_lock = threading.Lock()


def chart_weeks(
    session: Session,
    first: str,
    last: str,
    zones: PropertyZones,
    scope: TicketScope | None,
    now: datetime,
    last_rows: Sequence[FollowUpReportRow] | None = None,
) -> list[tuple[str, FollowUpTally]]:
    """`weekly_report` for the chart: the last week (this one) counted now — summed from `last_rows`, its report
    rows, when the page has counted them already — the weeks before it as counted within PAST_WEEKS_FRESH_FOR.
    The week's table and the CSV are counted every time."""
    weeks = report_weeks(first, last)
    if not weeks:
        return []
    if last_rows is not None:
        current = weekly_totals(last_rows, weeks[-1:])
    else:
        current = weekly_report(session, weeks[-1], weeks[-1], zones, scope)
    if len(weeks) < 2:
        return current
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    key = (weeks[0], weeks[-2], zones.default, tuple(sorted(zones.others.items())), scope)
    with _past_weeks_lock:
        kept = _past_weeks.setdefault(engine, {}).get(key)
    if kept is None or kept[0] <= now - PAST_WEEKS_FRESH_FOR or kept[0] > now:
        kept = (now, weekly_report(session, weeks[0], weeks[-2], zones, scope))
        with _past_weeks_lock:
            _past_weeks[engine][key] = kept
    past = [(week, replace(tally)) for week, tally in kept[1]]  # copies: the kept ones stay as counted
    return past + current


def weekly_totals(rows: Iterable[FollowUpReportRow], weeks: Sequence[str]) -> list[tuple[str, FollowUpTally]]:
    """Each of `weeks` with its rows summed over properties and departments (an empty tally for a week with
    none): the chart's figures."""
    totals = {week: FollowUpTally() for week in weeks}
    for row in rows:
        if row.week in totals:
            totals[row.week].add(row.tally)
    return list(totals.items())
