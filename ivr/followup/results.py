"""What the resident answered on a follow-up call, put on the ticket through the procedure: satisfied closes it,
"not resolved" reopens it and tells its department and the manager. No Flask here; flushes only."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ivr.db import utcnow
from ivr.models import FollowUp, FollowUpState, Notice, Recording, Role, Ticket
from ivr.notifications import notify_managers
from ivr.tickets import procedure
from ivr.tickets.events import record_event

ACTOR = "回访电话"  # how the line signs the procedure's steps it takes on a follow-up call
SATISFIED_FROM = 3  # resolved and at least 基本满意 (3 of 5): satisfied, the ticket is closed


def satisfaction_label(score: int) -> str:
    """The procedure's satisfaction for a keypad score: 4–5 满意, 3 基本满意, 1–2 不满意."""
    satisfied, fairly, not_satisfied = procedure.SATISFACTION
    return satisfied if score >= 4 else fairly if score == 3 else not_satisfied


def result_text(resolved: bool, score: int | None) -> str:
    """The follow-up result as the ticket shows it."""
    said = "住户表示问题已解决" if resolved else "住户表示问题没有解决"
    rating = f",满意度{score}分({satisfaction_label(score)})" if score is not None else ",未评满意度"
    return f"回访电话:{said}{rating}。"


def record_answers(session: Session, follow_up: FollowUp, *, resolved: bool, score: int | None) -> None:
    """Keep the answers on the follow-up and the ticket: resolved and satisfied (score ≥ SATISFIED_FROM) →
    followed up and closed; resolved but not satisfied → followed up, the manager told; not resolved →
    reopened, its department and the manager told. A ticket that moved on meanwhile keeps the answers on its
    timeline only."""
    follow_up.resolved, follow_up.satisfaction = resolved, score
    follow_up.answered_at = utcnow()
    follow_up.state, follow_up.last_outcome = FollowUpState.DONE, "answered"
    follow_up.reason = None
    ticket = follow_up.ticket
    text = result_text(resolved, score)
    applied: str | None = None
    try:
        if resolved and score is not None:
            procedure.follow_up(session, ticket, ACTOR, text, satisfaction_label(score))
            if score >= SATISFIED_FROM:
                procedure.close(session, ticket, ACTOR)
                applied = "closed"
            else:
                notify_managers(session, ticket, None, f"回访时住户对处理结果不满意(满意度{score}分)")
                applied = "followed_up"
        elif not resolved:
            procedure.reopen(session, ticket, ACTOR, "回访时住户表示问题没有解决")
            ticket.follow_up_result = text
            ticket.satisfaction = satisfaction_label(score) if score is not None else None
            tell_department(session, ticket, "回访时住户表示问题没有解决,工单已重新打开")
            notify_managers(session, ticket, None, "回访时住户表示问题没有解决,工单已重新打开")
            applied = "reopened"
    except procedure.ProcedureError as refused:
        follow_up.reason = f"回访结果未能写入工单流程:{refused}"
    record_event(
        session,
        ticket,
        "follow_up_answered",
        None,
        follow_up=follow_up.id,
        call_sid=follow_up.call_sid,
        resolved=resolved,
        satisfaction=score,
        applied=applied,
    )
    session.flush()


def tell_department(session: Session, ticket: Ticket, reason: str) -> Notice | None:
    """A console notice for the department that has the ticket (none when it was never forwarded)."""
    if not ticket.department:
        return None
    notice = Notice(ticket=ticket, role=Role.DEPARTMENT, message=f"工单 {ticket.number}({ticket.department}):{reason}")
    session.add(notice)
    record_event(session, ticket, "notified", None, role=Role.DEPARTMENT.value, department=ticket.department)
    return notice


def attach_comment(session: Session, follow_up: FollowUp, recording: Recording) -> None:
    """The resident's spoken comment: its recording (downloaded and transcribed like a message) on the
    follow-up, and on the ticket's timeline."""
    if follow_up.comment_recording_id == recording.id:
        return
    follow_up.comment_recording = recording
    record_event(
        session, follow_up.ticket, "follow_up_comment", None, follow_up=follow_up.id, recording=recording.recording_sid
    )
