"""QA review in the console: the calls to review (filtered, or the day's random sample), one call's scorecard
beside its recording, reviews, corrections that re-score, and the staff member's acknowledgement or dispute.
The weekly reports are in ivr.web.qa_reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.access import (
    REVIEWERS,
    SCORED,
    correction_access,
    evaluation_access,
    respond_access,
    review_access,
)
from ivr.audit import READ_EVALUATION, record_read
from ivr.corrections import NothingToCorrect, correct_transcript
from ivr.db import utcnow
from ivr.followup.call_back import call_back_of
from ivr.models import Call, Evaluation, User
from ivr.qa.evaluations import ReviewError, channel_names, respond, review, transfer_recording
from ivr.qa.reports import WeekError, week_bounds
from ivr.qa.scorecard import ANSWER_LABELS, ANSWERS, effective_answers, load_form
from ivr.qa.selection import EVALUATION_STATUS_LABELS, daily_sample, evaluations_query
from ivr.runtime import current_settings, request_transaction
from ivr.web.access import console_evaluation_scope, enforce, roles_required
from ivr.web.audit import console_reader
from ivr.web.blueprint import blueprint

MAX_LIST_ROWS = 300
MAX_SAMPLE = 50
MAX_COMMENT_CHARS = 2000


def _week_range(week: str) -> tuple[datetime, datetime] | None:
    """A week filter's bounds; a malformed week is reported and ignored."""
    if not week:
        return None
    try:
        return week_bounds(week, current_settings().timezone)
    except WeekError as exc:
        flash(str(exc), "error")
        return None


@blueprint.get("/qa")
@roles_required(*REVIEWERS)
def qa_list() -> ResponseReturnValue:
    """Evaluated calls of the reviewer's properties (or ?property=CODE), newest first, filtered by agent, status
    and week, or a daily random sample."""
    agent, status, week = (request.args.get(k, "").strip() for k in ("agent", "status", "week"))
    sample = request.args.get("sample", type=int)
    scope = console_evaluation_scope()
    with request_transaction() as session:
        evaluations = list(session.scalars(scope.where(evaluations_query(agent, status, _week_range(week)))))
        if sample:
            today = utcnow().astimezone(ZoneInfo(current_settings().timezone)).date()
            evaluations = daily_sample(evaluations, min(max(sample, 1), MAX_SAMPLE), today.isoformat())
        agents = session.scalars(
            select(User).where(User.id.in_(scope.where(select(Evaluation.agent_user_id)))).order_by(User.username)
        ).all()
        return render_template(
            "qa_list.html",
            evaluations=evaluations[:MAX_LIST_ROWS],
            truncated=len(evaluations) > MAX_LIST_ROWS,
            agents=agents,
            filters={
                "agent": agent,
                "status": status,
                "week": week,
                "sample": sample or "",
                "property": request.args.get("property", ""),
            },
            status_labels=EVALUATION_STATUS_LABELS,
            mine=False,
        )


@blueprint.get("/qa/mine")
@roles_required(*SCORED)
def qa_mine() -> ResponseReturnValue:
    """The logged-in staff member's own evaluations (of their properties, or ?property=CODE)."""
    with request_transaction() as session:
        query = console_evaluation_scope().where(evaluations_query().where(Evaluation.agent_user_id == current_user.id))
        evaluations = list(session.scalars(query.limit(MAX_LIST_ROWS)))
        return render_template(
            "qa_list.html",
            evaluations=evaluations,
            truncated=False,
            agents=[],
            filters={},
            status_labels=EVALUATION_STATUS_LABELS,
            mine=True,
        )


def _evaluation_or_abort(session: Session, call_sid: str) -> Evaluation:
    """The call's evaluation, if the user may read it (ivr.access.evaluation_access): reviewers see their
    properties', staff only their own; others get 403 whether or not the call exists, so they cannot probe for
    call ids."""
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
        (
            section.title,
            [
                ScorecardRow(
                    q.id,
                    q.text,
                    q.points,
                    q.critical,
                    evaluation.suggested.get(q.id, {}),
                    (evaluation.final or {}).get(q.id),
                    answers.get(q.id, "na"),
                )
                for q in section.questions
            ],
        )
        for section in load_form().sections
    ]


@blueprint.get("/qa/calls/<call_sid>")
@login_required
def qa_call(call_sid: str) -> ResponseReturnValue:
    with request_transaction() as session:
        evaluation = _evaluation_or_abort(session, call_sid)
        recording = transfer_recording(evaluation.call)
        record_read(
            session,
            console_reader(),
            READ_EVALUATION,
            call_sid=call_sid,
            recording_sid=recording.recording_sid if recording else None,
        )
        return render_template(
            "qa_call.html",
            evaluation=evaluation,
            call=evaluation.call,
            sections=scorecard_rows(evaluation),
            recording=recording,
            answer_labels=ANSWER_LABELS,
            answers=ANSWERS,
            status_labels=EVALUATION_STATUS_LABELS,
            channel_names=channel_names(session, evaluation.call),
            call_back=call_back_of(session, evaluation.call.id),
            can_review=review_access(current_user, evaluation).allowed,
            can_correct=recording is not None and correction_access(current_user, recording, evaluation).allowed,
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
    answers = {
        q.id: {"answer": form.get(f"answer-{q.id}", ""), "comment": form.get(f"comment-{q.id}", "")[:MAX_COMMENT_CHARS]}
        for q in load_form().questions
        if f"answer-{q.id}" in form
    }
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
            respond(
                session,
                evaluation,
                current_user._get_current_object(),
                accept,
                request.form.get("comment", "")[:MAX_COMMENT_CHARS],
            )
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
    with request_transaction() as session:
        evaluation = _evaluation_or_abort(session, call_sid)
        recording = transfer_recording(evaluation.call)
        if recording is None:
            abort(404)
        enforce(correction_access(current_user, recording, evaluation))
        try:
            correct_transcript(
                session,
                recording,
                channel,
                request.form.get("text", ""),
                current_user.username,
                current_settings().property_name,
            )
        except NothingToCorrect:
            abort(404)
        score = evaluation.final_score
        speaker = channel_names(session, evaluation.call).get(channel, str(channel))
    flash(f"{speaker}转写已保存并重新评分,最终得分 {'—' if score is None else score}", "ok")
    return _back(call_sid, f"#channel-{channel}")
