"""The 回访 page for the night shift, managers and admins: follow-up calls scheduled (when due, which attempt),
calling now, and the tickets to call back by hand (unreachable, a refused number, opted out), each linking to
its ticket and each list paged; this week's follow-up report and the weekly report as CSV. Only the follow-ups
of tickets in the account's scope (its properties)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from ivr.access import TICKET_WORKERS
from ivr.db import utcnow
from ivr.followup.calls import MAX_ATTEMPTS, OUTCOME_LABELS, call_back_by_hand_query
from ivr.followup.report import FollowUpReportRow, follow_up_report
from ivr.models import FollowUp, FollowUpState
from ivr.properties import all_properties
from ivr.qa.reports import WeekError, recent_weeks, week_bounds, week_of
from ivr.runtime import current_settings, request_session
from ivr.web.access import console_ticket_scope, roles_required
from ivr.web.blueprint import blueprint
from ivr.web.paging import PAGE_SIZE, Page, last_page, offset, page, requested_page

# Each list of the page and the query argument that pages it.
LISTS = {"scheduled": "scheduled_page", "calling": "calling_page", "by_hand": "by_hand_page"}
REPORT_WEEKS = 8  # the CSV's default span, ending with this week


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
    this_week, _ = recent_weeks(_today(), 1)
    return render_template(
        "follow_ups.html",
        lists=lists,
        property_names=_property_names(session),
        max_attempts=MAX_ATTEMPTS,
        outcomes=OUTCOME_LABELS,
        week=this_week,
        report=_report(session, this_week, this_week),
        report_weeks=REPORT_WEEKS,
    )


def _today() -> date:
    """Today in the console's time zone (IVR_TIMEZONE)."""
    return utcnow().astimezone(ZoneInfo(current_settings().timezone)).date()


def _property_names(session: Session) -> dict[int, str]:
    return {line.id: line.name for line in all_properties(session, current_settings())}


def _report(session: Session, start: str, end: str) -> list[FollowUpReportRow]:
    """The weekly report from ISO week `start` to `end` (both included) over the account's tickets; 400 for a
    week that is not one."""
    timezone = current_settings().timezone
    try:
        begin, _ = week_bounds(start, timezone)
        _, finish = week_bounds(end, timezone)
    except WeekError as exc:
        abort(400, str(exc))
    return follow_up_report(session, begin, finish, timezone, console_ticket_scope())


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
    timezone = current_settings().timezone
    start = week_of(week_bounds(start, timezone)[0], timezone)  # canonical, for the file name
    end = week_of(week_bounds(end, timezone)[1] - timedelta(seconds=1), timezone)
    names = _property_names(session)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["周", "小区", "部门", "应回访", "已回访", "未接通", "不再接收回访", "平均满意度", "未解决"])
    for row in rows:
        tally = row.tally
        average = tally.average_satisfaction
        cells = (
            row.week,
            names.get(row.property_id, str(row.property_id)),
            row.department,
            tally.due,
            tally.done,
            tally.unreachable,
            tally.opted_out,
            "" if average is None else average,
            tally.not_resolved,
        )
        writer.writerow([_cell(value) for value in cells])
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="follow-up-report-{start}-{end}.csv"'},
    )
