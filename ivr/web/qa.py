"""QA in the console: the calls to review, one call's scorecard beside its recording, corrections that
re-score, the staff member's acknowledgement or dispute, and the weekly reports (page and CSV)."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, contains_eager, selectinload

from ivr.access import (
    REVIEWERS,
    SCORED,
    correction_access,
    evaluation_access,
    respond_access,
    review_access,
)
from ivr.audit import READ_EVALUATION, record_read
from ivr.db import utcnow
from ivr.models import Call, Evaluation, EvaluationStatus, User
from ivr.qa.evaluations import ReviewError, correct_channel, respond, review, transfer_recording
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
from ivr.qa.scorecard import ANSWER_LABELS, ANSWERS, effective_answers, load_form
from ivr.qa.speech import CHANNEL_NAMES
from ivr.runtime import current_settings, request_transaction
from ivr.web.access import enforce, roles_required
from ivr.web.audit import console_reader
from ivr.web.blueprint import blueprint

STATUS_LABELS = {
    EvaluationStatus.SUGGESTED: "待复核", EvaluationStatus.REVIEWED: "已复核",
    EvaluationStatus.ACKNOWLEDGED: "已确认", EvaluationStatus.DISPUTED: "申诉中",
}
MAX_LIST_ROWS = 300
MAX_SAMPLE = 50
REPORT_WEEKS = 12  # the report's default span, ending with this week
MAX_TRANSCRIPT_CHARS = 20000
MAX_COMMENT_CHARS = 2000


def _today() -> datetime:
    return utcnow().astimezone(ZoneInfo(current_settings().timezone))


def _week_range(week: str) -> tuple[datetime, datetime] | None:
    """A week filter's bounds; a malformed week is reported and ignored."""
    if not week:
        return None
    try:
        return week_bounds(week, current_settings().timezone)
    except WeekError as exc:
        flash(str(exc), "error")
        return None


def _list_query(agent: str, status: str, week: str) -> Select[Any]:
    query = (select(Evaluation).join(Evaluation.call)
             .options(contains_eager(Evaluation.call), selectinload(Evaluation.agent))
             .order_by(Call.started_at.desc(), Evaluation.id.desc()))
    if agent:
        query = query.join(Evaluation.agent).where(User.username == agent)
    if status in {s.value for s in EvaluationStatus}:
        query = query.where(Evaluation.status == EvaluationStatus(status))
    bounds = _week_range(week)
    if bounds is not None:
        query = query.where(Call.started_at >= bounds[0], Call.started_at < bounds[1])
    return query


def daily_sample(evaluations: list[Evaluation], size: int, day: str) -> list[Evaluation]:
    """`size` unreviewed evaluations picked at random, the same picks all day (seeded by the local date)."""
    unreviewed = sorted((e for e in evaluations if e.status == EvaluationStatus.SUGGESTED), key=lambda e: e.id)
    picked = random.Random(f"{day}/{size}").sample(unreviewed, min(size, len(unreviewed)))
    return sorted(picked, key=lambda e: (e.call.started_at, e.id), reverse=True)


@blueprint.get("/qa")
@roles_required(*REVIEWERS)
def qa_list() -> ResponseReturnValue:
    """Evaluated calls, newest first, filtered by agent, status and week, or a daily random sample."""
    agent, status, week = (request.args.get(k, "").strip() for k in ("agent", "status", "week"))
    sample = request.args.get("sample", type=int)
    with request_transaction() as session:
        evaluations = list(session.scalars(_list_query(agent, status, week)))
        if sample:
            evaluations = daily_sample(evaluations, min(max(sample, 1), MAX_SAMPLE), _today().date().isoformat())
        agents = session.scalars(select(User).where(User.id.in_(select(Evaluation.agent_user_id)))
                                 .order_by(User.username)).all()
        return render_template("qa_list.html", evaluations=evaluations[:MAX_LIST_ROWS],
                               truncated=len(evaluations) > MAX_LIST_ROWS, agents=agents,
                               filters={"agent": agent, "status": status, "week": week, "sample": sample or ""},
                               status_labels=STATUS_LABELS, mine=False)


@blueprint.get("/qa/mine")
@roles_required(*SCORED)
def qa_mine() -> ResponseReturnValue:
    """The logged-in staff member's own evaluations."""
    with request_transaction() as session:
        query = _list_query("", "", "").where(Evaluation.agent_user_id == current_user.id)
        evaluations = list(session.scalars(query.limit(MAX_LIST_ROWS)))
        return render_template("qa_list.html", evaluations=evaluations, truncated=False, agents=[],
                               filters={}, status_labels=STATUS_LABELS, mine=True)


def _evaluation_or_abort(session: Session, call_sid: str) -> Evaluation:
    """The call's evaluation, if the user may read it (ivr.access.evaluation_access): reviewers see all,
    staff only their own; others get 403 whether or not the call exists, so they cannot probe for call ids."""
    evaluation = session.scalars(select(Evaluation).join(Evaluation.call).where(Call.call_sid == call_sid)).first()
    enforce(evaluation_access(current_user, evaluation))
    assert evaluation is not None
    return evaluation


@dataclass(frozen=True)
class ScorecardRow:
    """One question as the page shows it."""

    id: str
    text: str
    points: float
    critical: bool
    suggested: dict[str, object]
    final: dict[str, object] | None
    answer: str


def scorecard_rows(evaluation: Evaluation) -> list[tuple[str, list[ScorecardRow]]]:
    """The form's sections with each question's suggestion, the reviewer's answer and the effective one."""
    answers = effective_answers(evaluation.suggested, evaluation.final or {})
    return [
        (section.title, [ScorecardRow(q.id, q.text, q.points, q.critical, evaluation.suggested.get(q.id, {}),
                                      (evaluation.final or {}).get(q.id), answers.get(q.id, "na"))
                         for q in section.questions])
        for section in load_form().sections
    ]


@blueprint.get("/qa/calls/<call_sid>")
@login_required
def qa_call(call_sid: str) -> ResponseReturnValue:
    with request_transaction() as session:
        evaluation = _evaluation_or_abort(session, call_sid)
        recording = transfer_recording(evaluation.call)
        record_read(session, console_reader(), READ_EVALUATION, call_sid=call_sid,
                    recording_sid=recording.recording_sid if recording else None)
        return render_template(
            "qa_call.html", evaluation=evaluation, call=evaluation.call, sections=scorecard_rows(evaluation),
            recording=recording, answer_labels=ANSWER_LABELS, answers=ANSWERS,
            status_labels=STATUS_LABELS, channel_names=CHANNEL_NAMES,
            can_review=review_access(current_user, evaluation).allowed,
            can_correct=recording is not None
            and correction_access(current_user, recording, evaluation).allowed,
            can_respond=respond_access(current_user, evaluation).allowed,
        )


def _back(call_sid: str, anchor: str = "") -> ResponseReturnValue:
    return redirect(url_for("console.qa_call", call_sid=call_sid) + anchor)


@blueprint.post("/qa/calls/<call_sid>/review")
@roles_required(*REVIEWERS)
def qa_review(call_sid: str) -> ResponseReturnValue:
    """The reviewer's answer (and comment) per question; an answer that differs from the system's needs a
    comment, which comes back as a message."""
    form = request.form
    answers = {q.id: {"answer": form.get(f"answer-{q.id}", ""),
                      "comment": form.get(f"comment-{q.id}", "")[:MAX_COMMENT_CHARS]}
               for q in load_form().questions if f"answer-{q.id}" in form}
    try:
        with request_transaction() as session:
            evaluation = _evaluation_or_abort(session, call_sid)
            enforce(review_access(current_user, evaluation))
            review(session, evaluation, current_user.username, answers, form.get("comment", "")[:MAX_COMMENT_CHARS])
            score = evaluation.final_score
    except ReviewError as exc:
        flash(f"复核未保存:{exc}", "error")
    else:
        flash(f"复核已保存,最终得分 {'—' if score is None else score}", "ok")
    return _back(call_sid)


@blueprint.post("/qa/calls/<call_sid>/respond")
@login_required
def qa_respond(call_sid: str) -> ResponseReturnValue:
    """The evaluated staff member acknowledges the result or disputes it (with a reason)."""
    accept = request.form.get("action") == "accept"
    try:
        with request_transaction() as session:
            evaluation = _evaluation_or_abort(session, call_sid)
            enforce(respond_access(current_user, evaluation))
            respond(session, evaluation, current_user._get_current_object(), accept,
                    request.form.get("comment", "")[:MAX_COMMENT_CHARS])
    except ReviewError as exc:
        flash(str(exc), "error")
    else:
        flash("已确认评分结果" if accept else "申诉已提交,质检主管会重新复核", "ok")
    return _back(call_sid, "#respond")


@blueprint.post("/qa/calls/<call_sid>/transcripts/<int:channel>")
@roles_required(*REVIEWERS)
def qa_correct_transcript(call_sid: str, channel: int) -> ResponseReturnValue:
    """A reviewer's correction of one channel; the machine words stay for the timings. Re-scores the call:
    the system's suggestions follow the corrected text, the reviewer's own answers stay."""
    text = request.form.get("text", "").strip()[:MAX_TRANSCRIPT_CHARS]
    with request_transaction() as session:
        evaluation = _evaluation_or_abort(session, call_sid)
        recording = transfer_recording(evaluation.call)
        if recording is None:
            abort(404)
        enforce(correction_access(current_user, recording, evaluation))
        transcript = next((t for t in recording.transcripts if t.channel == channel), None)
        if transcript is None:
            abort(404)
        correct_channel(session, transcript, text, current_user.username, current_settings().property_name)
        score = evaluation.final_score
    flash(f"{CHANNEL_NAMES.get(channel, channel)}转写已保存并重新评分,最终得分 {'—' if score is None else score}", "ok")
    return _back(call_sid, f"#channel-{channel}")


# Reports ------------------------------------------------------------------------------------------------

def _report() -> tuple[QaReport, str, str]:
    """The report for ?start=…&end=… (ISO weeks), by default the last REPORT_WEEKS weeks."""
    timezone = current_settings().timezone
    default_start, default_end = recent_weeks(_today().date(), REPORT_WEEKS)
    start, end = request.args.get("start", "") or default_start, request.args.get("end", "") or default_end
    try:
        begin, _ = week_bounds(start, timezone)
        _, finish = week_bounds(end, timezone)
    except WeekError as exc:
        abort(400, str(exc))
    start, end = week_of(begin, timezone), week_of(finish - timedelta(seconds=1), timezone)  # canonical form
    with request_transaction() as session:
        return weekly_report(evaluations_between(session, begin, finish), timezone), start, end


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

    series = [Series(member.staff.label, f"s{i % 6}",
                     [(x_of[week], y_of(avg), week, avg) for week, avg in member.trend if avg is not None])
              for i, member in enumerate(staff)]
    return LineChart(width, height, left, right, top, bottom, [(x, week) for week, x in x_of.items()],
                     [(y_of(score), score) for score in (0, 25, 50, 75, 100)], series)


@blueprint.get("/qa/reports")
@roles_required(*REVIEWERS)
def qa_reports() -> ResponseReturnValue:
    report, start, end = _report()
    questions = {q.id: q.text for q in load_form().questions}
    return render_template("qa_reports.html", report=report, start=start, end=end, questions=questions,
                           chart=line_chart(report.weeks, report.staff))


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
        writer.writerow([_cell(v) for v in (
            row.week, row.staff.username or row.staff.number, row.staff.display_name, tally.evaluations,
            "" if tally.average is None else tally.average, tally.critical_failures,
            "; ".join(f"{qid}×{n}" for qid, n in tally.top_misses))])
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="qa-report-{start}-{end}.csv"'})
