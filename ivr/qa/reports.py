"""QA reports: per staff member and ISO week (in the property's time zone) — evaluations, average final
score, critical failures and the questions most often missed — and each member's weekly trend, over the
evaluations of the reader's properties."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager, selectinload

from ivr.access import EvaluationScope
from ivr.models import Call, Evaluation
from ivr.qa.scorecard import effective_answers

TOP_MISSES = 3


class WeekError(ValueError):
    """A week that is not written as YYYY-Www (the format of <input type="week">)."""


def week_of(moment: datetime, timezone: str) -> str:
    """The ISO week (e.g. 2024-W10) a UTC moment falls in, in the property's time zone."""
    year, week, _ = moment.astimezone(ZoneInfo(timezone)).isocalendar()
    return f"{year}-W{week:02d}"


def week_bounds(week: str, timezone: str) -> tuple[datetime, datetime]:
    """The UTC moments a local ISO week starts and ends (Monday 00:00 to the next Monday 00:00)."""
    try:
        year, number = week.split("-W")
        monday = date.fromisocalendar(int(year), int(number), 1)
    except ValueError as exc:
        raise WeekError(f"周的格式应为 2024-W10,收到 {week!r}") from exc
    zone = ZoneInfo(timezone)
    start = datetime.combine(monday, time(), zone)
    end = datetime.combine(monday + timedelta(days=7), time(), zone)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def recent_weeks(today: date, count: int) -> tuple[str, str]:
    """The first and last of the `count` ISO weeks ending with today's."""
    first = today - timedelta(weeks=count - 1)
    return (
        f"{first.isocalendar()[0]}-W{first.isocalendar()[1]:02d}",
        f"{today.isocalendar()[0]}-W{today.isocalendar()[1]:02d}",
    )


@dataclass(frozen=True, order=True)
class StaffMember:
    """Whom an evaluation is about: the staff account, or only the number that answered."""

    username: str  # empty when the answering number has no account
    display_name: str
    number: str

    @property
    def label(self) -> str:
        return self.display_name or self.username or self.number or "未知"


def staff_of(evaluation: Evaluation) -> StaffMember:
    agent = evaluation.agent
    if agent is not None:
        return StaffMember(agent.username, agent.display_name or agent.username, agent.phone or "")
    return StaffMember("", "", evaluation.agent_number or "")


def misses(evaluation: Evaluation) -> list[str]:
    """Question ids answered "no" once the reviewer's answers are taken into account."""
    answers = effective_answers(evaluation.suggested or {}, evaluation.final or {})
    return sorted(qid for qid, answer in answers.items() if answer == "no")


@dataclass(frozen=True)
class Tally:
    """Evaluations of one staff member over a stretch of time."""

    evaluations: int
    average: float | None  # of the final scores (evaluations with nothing applicable have none)
    critical_failures: int
    misses: list[tuple[str, int]]  # question id → times missed, most frequent first

    @classmethod
    def of(cls, evaluations: list[Evaluation]) -> Tally:
        scores = [e.final_score for e in evaluations if e.final_score is not None]
        missed = Counter(qid for e in evaluations for qid in misses(e))
        return cls(
            evaluations=len(evaluations),
            average=round(sum(scores) / len(scores), 1) if scores else None,
            critical_failures=sum(1 for e in evaluations if e.critical_failed),
            misses=sorted(missed.items(), key=lambda item: (-item[1], item[0])),
        )

    @property
    def top_misses(self) -> list[tuple[str, int]]:
        return self.misses[:TOP_MISSES]


@dataclass(frozen=True)
class StaffWeek:
    week: str
    staff: StaffMember
    tally: Tally


@dataclass(frozen=True)
class StaffSummary:
    staff: StaffMember
    tally: Tally  # over all the report's weeks
    trend: list[tuple[str, float | None]]  # (week, average) for each week the member was evaluated


@dataclass(frozen=True)
class QaReport:
    weeks: list[str]
    rows: list[StaffWeek]  # by week, then staff member
    staff: list[StaffSummary]
    overall: Tally


def weekly_report(evaluations: Iterable[Evaluation], timezone: str) -> QaReport:
    """Group evaluations by the local ISO week of their call and by staff member."""
    evaluations = list(evaluations)
    cells: dict[tuple[str, StaffMember], list[Evaluation]] = defaultdict(list)
    for evaluation in evaluations:
        cells[(week_of(evaluation.call.started_at, timezone), staff_of(evaluation))].append(evaluation)
    rows = [StaffWeek(week, staff, Tally.of(items)) for (week, staff), items in sorted(cells.items())]
    members: dict[StaffMember, list[StaffWeek]] = defaultdict(list)
    for row in rows:
        members[row.staff].append(row)
    summaries = [
        StaffSummary(
            staff,
            Tally.of([e for (_, who), items in cells.items() if who == staff for e in items]),
            [(row.week, row.tally.average) for row in staff_rows],
        )
        for staff, staff_rows in sorted(members.items())
    ]
    return QaReport(sorted({row.week for row in rows}), rows, summaries, Tally.of(evaluations))


def evaluations_between(session: Session, start: datetime, end: datetime, scope: EvaluationScope) -> list[Evaluation]:
    """Evaluations in `scope` (the reader's properties) of calls that started in [start, end), with their calls
    and staff accounts loaded."""
    query = (
        select(Evaluation)
        .join(Evaluation.call)
        .where(Call.started_at >= start, Call.started_at < end)
        .options(contains_eager(Evaluation.call), selectinload(Evaluation.agent))
        .order_by(Call.started_at)
    )
    return list(session.scalars(scope.where(query)))
