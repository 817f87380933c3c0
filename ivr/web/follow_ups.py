"""The 回访 page for the night shift, managers and admins: follow-up calls scheduled (when due, which attempt),
calling now, and the tickets to call back by hand (unreachable, a refused number, opted out), each linking to
its ticket and each list paged; and the 回访周报 page: this week's follow-up report, a chart of the last weeks,
and the weekly report as CSV. Only the follow-ups of tickets in the account's scope (its properties)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from ivr.access import TICKET_WORKERS
from ivr.db import utcnow
from ivr.followup.calls import MAX_ATTEMPTS, OUTCOME_LABELS, call_back_by_hand_query
from ivr.followup.report import FollowUpReportRow, chart_weeks, follow_up_report, property_zones, report_weeks
from ivr.models import FollowUp, FollowUpState
from ivr.properties import all_properties
from ivr.qa.reports import WeekError, recent_weeks
from ivr.runtime import current_settings, request_session
from ivr.web.access import console_ticket_scope, roles_required
from ivr.web.blueprint import blueprint
from ivr.web.charts import follow_up_chart
from ivr.web.paging import PAGE_SIZE, Page, last_page, offset, page, requested_page

# Each list of the page and the query argument that pages it.
LISTS = {"scheduled": "scheduled_page", "calling": "calling_page", "by_hand": "by_hand_page"}
REPORT_WEEKS = 8  # the chart's weeks and the CSV's default span, ending with this week
# The CSV's columns: the follow-ups' counts, then each satisfaction as how many scores and their average (so a
# spreadsheet can weigh rows together): the follow-up calls' (回访) and the inbound calls' (来电).
CSV_HEADER = (
    "周",
    "小区",
    "部门",
    "应回访",
    "已回访",
    "未接通",
    "不再接收回访",
    "未解决",
    "回访评分数",
    "回访平均满意度",
    "来电评分数",
    "来电平均满意度",
)


@dataclass(frozen=True)
class FollowUpList:
    """One list of the page: a page of its follow-ups (tickets loaded) and its pager."""

    page: Page
    rows: list[FollowUp]


def _in_state(state: FollowUpState, *order: Any) -> Select[Any]:
    return (
        select(FollowUp)
        .join(FollowUp.ticket)
        .where(FollowUp.state == state)
        .options(selectinload(FollowUp.ticket))
        .order_by(*order, FollowUp.id)
    )


def _paged(session: Session, query: Select[Any], name: str, url: Callable[[str, int], str]) -> FollowUpList:
    """The page of `query` asked for by the list's own argument, counted exactly, within the account's scope."""
    query = console_ticket_scope().where(query)
    total = session.scalar(select(func.count()).select_from(query.with_only_columns(FollowUp.id).subquery())) or 0
    number = min(requested_page(request.args.get(LISTS[name])), last_page(total))
    rows = list(session.scalars(query.limit(PAGE_SIZE).offset(offset(number))))
    return FollowUpList(page(number, len(rows), total, lambda n: url(name, n)), rows)


@blueprint.get("/follow-ups")
@roles_required(*TICKET_WORKERS)
def follow_ups() -> ResponseReturnValue:
    """`?property=CODE` narrows to one property; `scheduled_page`, `calling_page`, `by_hand_page` page each list."""
    session = request_session()  # reads only
    kept: dict[str, Any] = {key: value for key, value in request.args.items() if value}

    def url(name: str, number: int) -> str:
        return url_for("console.follow_ups", **{**kept, LISTS[name]: number})

    lists = {
        "scheduled": _paged(session, _in_state(FollowUpState.SCHEDULED, FollowUp.due_at), "scheduled", url),
        "calling": _paged(session, _in_state(FollowUpState.CALLING, FollowUp.last_attempt_at), "calling", url),
        "by_hand": _paged(session, call_back_by_hand_query(), "by_hand", url),
    }
    return render_template(
        "follow_ups.html",
        lists=lists,
        property_names=_property_names(session),
        max_attempts=MAX_ATTEMPTS,
        outcomes=OUTCOME_LABELS,
        report_weeks=REPORT_WEEKS,
    )


@blueprint.get("/follow-ups/report")
@roles_required(*TICKET_WORKERS)
def follow_up_report_page() -> ResponseReturnValue:
    """回访周报: this week per property and department, and a chart of the last REPORT_WEEKS weeks with their
    totals — the supervisor's page, apart from the night shift's lists so that each stays fast; `?property=CODE`
    narrows."""
    session = request_session()  # reads only
    first_week, this_week = recent_weeks(_today(), REPORT_WEEKS)
    zones = property_zones(session, current_settings())
    report = _report(session, this_week, this_week)
    weekly = chart_weeks(session, first_week, this_week, zones, console_ticket_scope(), utcnow(), report)
    return render_template(
        "follow_up_report.html",
        property_names=_property_names(session),
        week=this_week,
        report=report,
        weekly=weekly,
        chart=follow_up_chart(weekly),
        report_weeks=REPORT_WEEKS,
    )


def _today() -> date:
    """Today in the console's time zone (IVR_TIMEZONE)."""
    return utcnow().astimezone(ZoneInfo(current_settings().timezone)).date()


def _property_names(session: Session) -> dict[int, str]:
    return {line.id: line.name for line in all_properties(session, current_settings())}


def _report(session: Session, start: str, end: str) -> list[FollowUpReportRow]:
    """The weekly report from ISO week `start` to `end` (both included) over the account's tickets, each
    property's weeks in its own time zone; 400 for a week that is not one or a span too long."""
    try:
        return follow_up_report(
            session, start, end, property_zones(session, current_settings()), console_ticket_scope()
        )
    except WeekError as exc:
        abort(400, str(exc))


def _blank(average: float | None) -> float | str:
    """An average, or an empty cell when nobody gave a score (not 0: that would read as a score)."""
    return "" if average is None else average


def _cell(value: object) -> object:
    """Keep spreadsheet programs from running a name that starts like a formula (=, +, -, @)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@blueprint.get("/follow-ups/report.csv")
@roles_required(*TICKET_WORKERS)
def follow_up_report_csv() -> ResponseReturnValue:
    """The weekly follow-up report per property and department as CSV, `?start=2026-W45&end=2026-W49` (ISO
    weeks; by default the last REPORT_WEEKS), narrowed to `?property=CODE`; UTF-8 with a BOM for Excel."""
    session = request_session()  # reads only
    default_start, default_end = recent_weeks(_today(), REPORT_WEEKS)
    start, end = request.args.get("start", "") or default_start, request.args.get("end", "") or default_end
    rows = _report(session, start, end)
    start, end = report_weeks(start, start)[0], report_weeks(end, end)[0]  # canonical, for the file name
    names = _property_names(session)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for row in rows:
        tally = row.tally
        cells = (
            row.week,
            names.get(row.property_id, str(row.property_id)),
            row.department,
            tally.due,
            tally.done,
            tally.unreachable,
            tally.opted_out,
            tally.not_resolved,
            tally.scores,
            _blank(tally.average_satisfaction),
            tally.call_scores,
            _blank(tally.average_call_satisfaction),
        )
        writer.writerow([_cell(value) for value in cells])
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="follow-up-report-{start}-{end}.csv"'},
    )
