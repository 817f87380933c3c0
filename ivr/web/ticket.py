"""A ticket: the record (E3), every take with its transcript, the procedure, notes and the timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.access import edit_access, notice_access, recording_access, step_access, ticket_access
from ivr.audit import ACTION_LABELS, READ_TICKET, record_listen, record_read, ticket_audit
from ivr.db import utcnow
from ivr.models import Job, Notice, Recording, Ticket
from ivr.qa.evaluations import evaluation_of_call
from ivr.recordings.serving import stored_recording_response
from ivr.runtime import current_settings, request_transaction
from ivr.tickets import procedure
from ivr.tickets.procedure import DEPARTMENTS, SATISFACTION, ProcedureError
from ivr.tickets.sla import clocks
from ivr.web.access import enforce
from ivr.web.audit import console_reader
from ivr.web.blueprint import blueprint


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    who: str
    what: str
    detail: dict[str, Any]


def _ticket_or_404(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        abort(404)
    enforce(ticket_access(current_user, ticket))
    return ticket


EVENT_LABELS = {
    # "viewed" and "listened" are older rows: views and listens are now in the audit (AuditEvent).
    "viewed": "查看工单", "listened": "收听录音", "status": "状态变更", "transcript_corrected": "修改转写",
    "note": "添加备注", "flagged": "报告经理", "record_updated": "修改来电记录",
}


def timeline(session: Session, ticket: Ticket) -> list[TimelineEntry]:
    """Everything that happened: the call's webhooks, the jobs on its recordings, staff actions, and who
    opened the ticket and heard its messages (from the audit, in the console or through the API)."""
    entries = [TimelineEntry(event.at, event.actor or "系统", EVENT_LABELS.get(event.kind, event.kind), event.detail)
               for event in ticket.events]
    entries += [TimelineEntry(read.at, read.actor,
                              ACTION_LABELS[read.action] + ("(API)" if read.via == "api" else ""),
                              {"recording": read.recording_sid} if read.recording_sid else {})
                for read in ticket_audit(session, ticket.id)]
    if ticket.call is not None:
        entries += [TimelineEntry(event.at, "电话线路", f"来电步骤 {event.endpoint}",
                                  {key: value for key, value in event.params.items()
                                   if key in ("Digits", "CallStatus", "DialCallStatus", "RecordingStatus")})
                    for event in ticket.call.events]
    recording_ids = [recording.id for recording in ticket.recordings]
    if recording_ids:
        for job in session.scalars(select(Job).where(Job.subject_id.in_(recording_ids),
                                                     Job.kind.in_(["download_recording", "transcribe_recording"]))):
            label = {"download_recording": "下载录音", "transcribe_recording": "语音转写"}[job.kind]
            entries.append(TimelineEntry(job.finished_at or job.created_at, "后台任务", f"{label}({job.state.value})",
                                         {"attempts": job.attempts, "error": job.last_error} if job.last_error
                                         else {"attempts": job.attempts}))
    return sorted(entries, key=lambda entry: entry.at)


@blueprint.get("/tickets/<int:ticket_id>")
@login_required
def show_ticket(ticket_id: int) -> ResponseReturnValue:
    with request_transaction() as session:
        ticket = _ticket_or_404(session, ticket_id)
        record_read(session, console_reader(), READ_TICKET, ticket_id=ticket.id)
        allowed = [step for step in procedure.next_steps(ticket)
                   if step_access(current_user, ticket, step.name).allowed]
        return render_template(
            "ticket.html", ticket=ticket, steps=allowed, clocks=clocks(ticket, utcnow(), current_settings().timezone),
            timeline=timeline(session, ticket), departments=DEPARTMENTS, satisfaction=SATISFACTION,
            can_edit=edit_access(current_user, ticket).allowed,
            internal_notes=[n for n in ticket.notes if not n.told_caller],
            caller_notes=[n for n in ticket.notes if n.told_caller],
        )


def _run_step(session: Session, ticket: Ticket, step: str, form: dict[str, str]) -> None:
    actor = current_user.username
    match step:
        case "dispatch":
            procedure.dispatch(session, ticket, actor, form.get("department", ""), form.get("handler", ""))
        case "start":
            procedure.start_work(session, ticket, actor)
        case "analysis":
            procedure.write_analysis(session, ticket, actor, form.get("analysis", ""), form.get("approved_by"))
        case "resolve":
            procedure.resolve(session, ticket, actor)
        case "reply":
            procedure.reply_to_caller(session, ticket, actor, form.get("told", ""))
        case "follow_up":
            procedure.follow_up(session, ticket, actor, form.get("result", ""), form.get("satisfaction", ""))
        case "close":
            procedure.close(session, ticket, actor)
        case "reopen":
            procedure.reopen(session, ticket, actor, form.get("reason", ""))
        case _:
            abort(404)


@blueprint.post("/tickets/<int:ticket_id>/steps/<step>")
@login_required
def take_step(ticket_id: int, step: str) -> ResponseReturnValue:
    """One step of the procedure; a missing field or a wrong order comes back as a message."""
    try:
        with request_transaction() as session:
            ticket = _ticket_or_404(session, ticket_id)
            enforce(step_access(current_user, ticket, step))
            _run_step(session, ticket, step, request.form.to_dict())
    except ProcedureError as exc:
        flash(str(exc), "error")
    else:
        flash(f"已完成:{procedure.STEP_NAMES.get(step, step)}", "ok")
    return redirect(url_for("console.show_ticket", ticket_id=ticket_id))


@blueprint.post("/tickets/<int:ticket_id>/transcript")
@login_required
def correct_transcript(ticket_id: int) -> ResponseReturnValue:
    with request_transaction() as session:
        ticket = _ticket_or_404(session, ticket_id)
        enforce(edit_access(current_user, ticket))
        procedure.correct_transcript(session, ticket, current_user.username, request.form.get("text", "")[:10000])
    flash("转写已保存,原始转写保留在旁", "ok")
    return redirect(url_for("console.show_ticket", ticket_id=ticket_id))


@blueprint.post("/tickets/<int:ticket_id>/caller")
@login_required
def update_caller(ticket_id: int) -> ResponseReturnValue:
    """E3: the caller's name (and a corrected room) as staff learn them, e.g. on the call-back."""
    try:
        with request_transaction() as session:
            ticket = _ticket_or_404(session, ticket_id)
            enforce(edit_access(current_user, ticket))
            procedure.update_caller(session, ticket, current_user.username,
                                    request.form.get("caller_name", ""), request.form.get("room", ""))
    except ProcedureError as exc:
        flash(str(exc), "error")
    return redirect(url_for("console.show_ticket", ticket_id=ticket_id))


@blueprint.post("/tickets/<int:ticket_id>/notes")
@login_required
def add_note(ticket_id: int) -> ResponseReturnValue:
    try:
        with request_transaction() as session:
            ticket = _ticket_or_404(session, ticket_id)
            enforce(edit_access(current_user, ticket))
            procedure.add_note(session, ticket, current_user.username, request.form.get("text", "")[:10000],
                               told_caller=request.form.get("told_caller") == "1")
    except ProcedureError as exc:
        flash(str(exc), "error")
    return redirect(url_for("console.show_ticket", ticket_id=ticket_id) + "#notes")


@blueprint.post("/tickets/<int:ticket_id>/flag")
@login_required
def flag_ticket(ticket_id: int) -> ResponseReturnValue:
    """重大投诉: report to the manager at once."""
    with request_transaction() as session:
        ticket = _ticket_or_404(session, ticket_id)
        enforce(edit_access(current_user, ticket))
        reason = request.form.get("reason", "").strip()[:500] or "值班人员标记为重大投诉"
        procedure.flag_for_manager(session, ticket, current_user.username, reason)
    flash("已报告经理", "ok")
    return redirect(url_for("console.show_ticket", ticket_id=ticket_id))


@blueprint.post("/notices/<int:notice_id>/read")
@login_required
def read_notice(notice_id: int) -> ResponseReturnValue:
    with request_transaction() as session:
        notice = session.get(Notice, notice_id)
        if notice is None:
            abort(404)
        enforce(notice_access(current_user, notice))
        notice.read_by, notice.read_at = current_user.username, utcnow()
    return redirect(request.referrer or url_for("console.queue"))


@blueprint.get("/recordings/<sid>/audio")
@login_required
def recording_audio(sid: str) -> ResponseReturnValue:
    """The stored audio for logged-in staff who may hear it (range requests for seeking). Serving it is
    what is audited as a listen — the page's players do not preload, so opening a page is not listening."""
    with request_transaction() as session:
        recording = session.scalars(select(Recording).where(Recording.recording_sid == sid)).first()
        if recording is None:
            abort(404)
        enforce(recording_access(current_user, recording, evaluation_of_call(session, recording.call_id)))
        response = stored_recording_response(recording)
        if request.method == "GET":  # a HEAD sends no audio
            record_listen(session, console_reader(), recording, request.headers.get("Range"))
        return response
