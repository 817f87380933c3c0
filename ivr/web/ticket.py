"""A ticket: the record (E3), every take with its transcript, the procedure, notes and the timeline."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.access import (
    call_back_access,
    correction_access,
    edit_access,
    evaluation_access,
    notice_access,
    recording_access,
    step_access,
    ticket_access,
    ticket_scope,
)
from ivr.audit import READ_TICKET, record_listen, record_read
from ivr.corrections import correct_transcript, correction_target
from ivr.db import utcnow
from ivr.followup import call_back
from ivr.followup.call_back import call_back_offer, calls_back_on
from ivr.models import CallBack, Notice, Recording, Ticket, User
from ivr.properties import line_property
from ivr.qa.evaluations import evaluation_of_call
from ivr.recordings.serving import stored_recording_response
from ivr.residents.caller_card import caller_card
from ivr.runtime import current_settings, request_transaction
from ivr.tickets import procedure
from ivr.tickets.call_satisfaction import SCORE_LABELS
from ivr.tickets.operations import mark_notice_read
from ivr.tickets.procedure import DEPARTMENTS, SATISFACTION, ProcedureError
from ivr.tickets.sla import clocks
from ivr.tickets.timeline import timeline
from ivr.web.access import enforce
from ivr.web.audit import console_reader
from ivr.web.blueprint import blueprint


def _ticket_or_404(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        abort(404)
    enforce(ticket_access(current_user, ticket))
    return ticket


@blueprint.get("/tickets/<int:ticket_id>")
@login_required
def show_ticket(ticket_id: int) -> ResponseReturnValue:
    with request_transaction() as session:
        ticket = _ticket_or_404(session, ticket_id)
        record_read(session, console_reader(), READ_TICKET, ticket_id=ticket.id)
        allowed = [
            step for step in procedure.next_steps(ticket) if step_access(current_user, ticket, step.name).allowed
        ]
        correcting = correction_target(ticket)
        return render_template(
            "ticket.html",
            ticket=ticket,
            steps=allowed,
            clocks=clocks(ticket, utcnow(), current_settings().timezone),
            timeline=timeline(session, ticket),
            caller=caller_card(session, ticket, ticket_scope(current_user)),
            departments=DEPARTMENTS,
            satisfaction=SATISFACTION,
            can_edit=edit_access(current_user, ticket).allowed,
            correcting=correcting
            if correcting is not None and correction_access(current_user, correcting, None).allowed
            else None,
            internal_notes=[n for n in ticket.notes if not n.told_caller],
            caller_notes=[n for n in ticket.notes if n.told_caller],
            call_back=call_back_offer(session, ticket, _staff(session), current_settings(), utcnow())
            if call_back_access(current_user, ticket).allowed
            else None,
            call_backs=[(each, _scored_call(session, each)) for each in calls_back_on(session, ticket)],
            call_back_states=call_back.STATE_LABELS,
            call_satisfaction_labels=SCORE_LABELS,
            property_name=line_property(session, ticket.property_id, current_settings()).name,
        )


def _scored_call(session: Session, each: CallBack) -> str | None:
    """The call-back's call, when it was scored and this staff member may read the evaluation."""
    if each.call is None:
        return None
    evaluation = evaluation_of_call(session, each.call.id)
    if evaluation is None or not evaluation_access(current_user, evaluation).allowed:
        return None
    return each.call.call_sid


def _staff(session: Session) -> User:
    user = session.get(User, current_user.id)
    assert user is not None  # the log-in's account
    return user


@blueprint.post("/tickets/<int:ticket_id>/call-back")
@login_required
def call_back_resident(ticket_id: int) -> ResponseReturnValue:
    """回拨: ring the staff member's phone, then the resident; at meal times or at night only with a reason."""
    try:
        with request_transaction() as session:
            ticket = _ticket_or_404(session, ticket_id)
            enforce(call_back_access(current_user, ticket))
            placed = call_back.request_call_back(
                session, ticket, _staff(session), current_settings(), utcnow(), request.form.get("reason", "")
            )
            staff_phone = placed.staff_phone
    except call_back.CallBackRefused as exc:
        flash(str(exc), "error")
    else:
        flash(f"正在拨打您的电话 {staff_phone},接听后为您接通住户", "ok")
    return redirect(url_for("console.show_ticket", ticket_id=ticket_id) + "#call-back")


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
def correct_ticket_transcript(ticket_id: int) -> ResponseReturnValue:
    """The correction of what the caller said: it goes on the take the ticket's text comes from."""
    with request_transaction() as session:
        ticket = _ticket_or_404(session, ticket_id)
        enforce(edit_access(current_user, ticket))
        take = correction_target(ticket)
        if take is None:
            flash("这张工单还没有可修改的转写(留言尚未转写或没有留言),可以添加备注", "error")
        else:
            enforce(correction_access(current_user, take, None))
            correct_transcript(
                session, take, 0, request.form.get("text", ""), current_user.username, current_settings().property_name
            )
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
            procedure.update_caller(
                session,
                ticket,
                current_user.username,
                request.form.get("caller_name", ""),
                request.form.get("room", ""),
            )
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
            procedure.add_note(
                session,
                ticket,
                current_user.username,
                request.form.get("text", "")[:10000],
                told_caller=request.form.get("told_caller") == "1",
            )
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
        mark_notice_read(session, notice, current_user.username)
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
