"""QA reports in the console: each staff member's weekly scores as a page (with a line chart) and as CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import Response, abort, render_template, request
from flask.typing import ResponseReturnValue

from ivr.access import REVIEWERS
from ivr.db import utcnow
from ivr.qa.reports import (
    QaReport,
    StaffSummary,
    WeekError,
    evaluations_between,
    recent_weeks,
    week_bounds,
    week_of,
    weekly_report,
)
from ivr.qa.scorecard import load_form
from ivr.runtime import current_settings, request_transaction
from ivr.web.access import console_evaluation_scope, roles_required
from ivr.web.blueprint import blueprint

REPORT_WEEKS = 12  # the report's default span, ending with this week


def _report() -> tuple[QaReport, str, str]:
    """The report for ?start=…&end=… (ISO weeks), by default the last REPORT_WEEKS weeks, over the evaluations
    of the reviewer's properties (narrowed to ?property=CODE when asked)."""
    timezone = current_settings().timezone
    default_start, default_end = recent_weeks(utcnow().astimezone(ZoneInfo(timezone)).date(), REPORT_WEEKS)
    start, end = request.args.get("start", "") or default_start, request.args.get("end", "") or default_end
    try:
        begin, _ = week_bounds(start, timezone)
        _, finish = week_bounds(end, timezone)
    except WeekError as exc:
        abort(400, str(exc))
    start, end = week_of(begin, timezone), week_of(finish - timedelta(seconds=1), timezone)  # canonical form
    with request_transaction() as session:
        evaluations = evaluations_between(session, begin, finish, console_evaluation_scope())
        return weekly_report(evaluations, timezone), start, end


@dataclass(frozen=True)
class Series:
    label: str
    css: str
    points: list[tuple[float, float, str, float]]  # x, y, week, average

    @property
    def polyline(self) -> str:
        return " ".join(f"{x},{y}" for x, y, _, _ in self.points)


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    weeks: list[tuple[float, str]]  # x, week
    grid: list[tuple[float, int]]  # y, score
    series: list[Series]


def line_chart(weeks: list[str], staff: list[StaffSummary], width: int = 640, height: int = 260) -> LineChart:
    """Coordinates for an inline SVG of each member's weekly average (0–100) across the report's weeks."""
    left, right, top, bottom = 36, 40, 12, 40  # room for the axis labels (weeks are centred on their x)
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(weeks) - 1, 1)
    x_of = {week: round(left + (i * step if len(weeks) > 1 else plot_w / 2), 1) for i, week in enumerate(weeks)}

    def y_of(score: float) -> float:
        return round(top + (100 - score) / 100 * plot_h, 1)

    series = [
        Series(
            member.staff.label,
            f"s{i % 6}",
            [(x_of[week], y_of(avg), week, avg) for week, avg in member.trend if avg is not None],
        )
        for i, member in enumerate(staff)
    ]
    return LineChart(
        width,
        height,
        left,
        right,
        top,
        bottom,
        [(x, week) for week, x in x_of.items()],
        [(y_of(score), score) for score in (0, 25, 50, 75, 100)],
        series,
    )


@blueprint.get("/qa/reports")
@roles_required(*REVIEWERS)
def qa_reports() -> ResponseReturnValue:
    report, start, end = _report()
    questions = {q.id: q.text for q in load_form().questions}
    return render_template(
        "qa_reports.html",
        report=report,
        start=start,
        end=end,
        questions=questions,
        chart=line_chart(report.weeks, report.staff),
        property=request.args.get("property", "").strip(),
    )


def _cell(value: object) -> object:
    """Keep spreadsheet programs from running a name that starts like a formula (=, +, -, @)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@blueprint.get("/qa/reports.csv")
@roles_required(*REVIEWERS)
def qa_reports_csv() -> ResponseReturnValue:
    """The weekly table as CSV; UTF-8 with a BOM so Excel reads the Chinese correctly."""
    report, start, end = _report()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["周", "用户名", "姓名", "评分次数", "平均分", "关键项不合格", "常见失分项"])
    for row in report.rows:
        tally = row.tally
        writer.writerow(
            [
                _cell(v)
                for v in (
                    row.week,
                    row.staff.username or row.staff.number,
                    row.staff.display_name,
                    tally.evaluations,
                    "" if tally.average is None else tally.average,
                    tally.critical_failures,
                    "; ".join(f"{qid}×{n}" for qid, n in tally.top_misses),
                )
            ]
        )
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="qa-report-{start}-{end}.csv"'},
    )
