"""The complaint and repair procedure as state changes with their required fields, each one audited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ivr.db import utcnow
from ivr.followup.schedule import schedule_follow_up
from ivr.models import Category, Notice, Ticket, TicketNote, TicketStatus
from ivr.notifications import notify_managers
from ivr.tickets.events import record_event

DEPARTMENTS = ("工程部", "秩序维护部", "环境部", "绿化", "客服部", "财务")
SATISFACTION = ("满意", "基本满意", "不满意")
AWAITING_FOLLOW_UP = {TicketStatus.RESOLVED, TicketStatus.REPLIED}

STATUS_LABELS = {
    TicketStatus.REGISTERED: "已登记",
    TicketStatus.DISPATCHED: "已转交",
    TicketStatus.IN_PROGRESS: "处理中",
    TicketStatus.ANALYSED: "已分析",
    TicketStatus.RESOLVED: "已处理",
    TicketStatus.REPLIED: "已回复",
    TicketStatus.FOLLOWED_UP: "已回访",
    TicketStatus.CLOSED: "已关闭",
}
CATEGORY_LABELS = {
    Category.REPAIR: "报修",
    Category.COMPLAINT: "投诉",
    Category.FEE: "物业费",
    Category.EMERGENCY: "紧急",
    Category.OTHER: "其他",
}


class ProcedureError(ValueError):
    """A step that cannot be taken now, or is missing what the procedure requires (message in Chinese)."""


def _require(value: str | None, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ProcedureError(f"请填写{what}")
    return text


def _move(
    session: Session, ticket: Ticket, allowed_from: set[TicketStatus], to: TicketStatus, actor: str, **detail: Any
) -> None:
    if ticket.status not in allowed_from:
        raise ProcedureError(f"工单当前为「{STATUS_LABELS[ticket.status]}」,不能变为「{STATUS_LABELS[to]}」")
    record_event(session, ticket, "status", actor, **{"from": ticket.status.value, "to": to.value}, **detail)
    ticket.status = to
    session.flush()


def dispatch(session: Session, ticket: Ticket, actor: str, department: str, handler: str) -> None:
    """Forward the register entry to the responsible department; the receiver signs as 处理人."""
    if department not in DEPARTMENTS:
        raise ProcedureError("请选择责任部门")
    ticket.department = department
    ticket.handler = _require(handler, "处理人(接收人)")
    ticket.dispatched_at = utcnow()
    _move(
        session,
        ticket,
        {TicketStatus.REGISTERED, TicketStatus.DISPATCHED},
        TicketStatus.DISPATCHED,
        actor,
        department=department,
        handler=ticket.handler,
    )


def start_work(session: Session, ticket: Ticket, actor: str) -> None:
    ticket.started_at = utcnow()
    _move(session, ticket, {TicketStatus.DISPATCHED}, TicketStatus.IN_PROGRESS, actor)


def write_analysis(session: Session, ticket: Ticket, actor: str, analysis: str, approved_by: str | None) -> None:
    """原因分析与纠正措施, approved by the department head."""
    ticket.cause_analysis = _require(analysis, "原因分析与纠正措施")
    ticket.analysis_approved_by = (approved_by or "").strip() or None
    _move(
        session,
        ticket,
        {TicketStatus.IN_PROGRESS, TicketStatus.ANALYSED},
        TicketStatus.ANALYSED,
        actor,
        approved_by=ticket.analysis_approved_by,
    )


def resolve(session: Session, ticket: Ticket, actor: str) -> None:
    """The correction is done. Complaints need their cause analysis first."""
    if ticket.category == Category.COMPLAINT and not ticket.cause_analysis:
        raise ProcedureError("投诉工单须先填写原因分析与纠正措施")
    ticket.resolved_at = utcnow()
    _move(session, ticket, {TicketStatus.IN_PROGRESS, TicketStatus.ANALYSED}, TicketStatus.RESOLVED, actor)
    if ticket.category != Category.COMPLAINT:  # a complaint is followed up once the reply is recorded
        schedule_follow_up(session, ticket)


def reply_to_caller(session: Session, ticket: Ticket, actor: str, told: str) -> None:
    """复清楚: what the caller was told about the process and the result."""
    ticket.reply_to_caller = _require(told, "答复业主的内容")
    ticket.replied_at = utcnow()
    session.add(TicketNote(ticket=ticket, author=actor, told_caller=True, text=ticket.reply_to_caller))
    _move(session, ticket, {TicketStatus.RESOLVED}, TicketStatus.REPLIED, actor)
    if ticket.category == Category.COMPLAINT:
        schedule_follow_up(session, ticket)


def follow_up(session: Session, ticket: Ticket, actor: str, result: str, satisfaction: str) -> None:
    """回访: the caller's view of the result, and how satisfied they are."""
    if satisfaction not in SATISFACTION:
        raise ProcedureError("请选择业主满意度")
    ticket.follow_up_result = _require(result, "回访结果")
    ticket.satisfaction = satisfaction
    ticket.followed_up_at = utcnow()
    # The follow-up call of a repair (or any ticket but a complaint) may come before anyone replied.
    allowed = {TicketStatus.REPLIED} if ticket.category == Category.COMPLAINT else AWAITING_FOLLOW_UP
    _move(session, ticket, allowed, TicketStatus.FOLLOWED_UP, actor, satisfaction=satisfaction)


def close(session: Session, ticket: Ticket, actor: str) -> None:
    ticket.closed_at = utcnow()
    _move(session, ticket, {TicketStatus.FOLLOWED_UP}, TicketStatus.CLOSED, actor)


def reopen(session: Session, ticket: Ticket, actor: str, reason: str) -> None:
    """Back to work (e.g. the caller is not satisfied); the earlier steps stay on the timeline."""
    why = _require(reason, "重新打开的原因")
    ticket.resolved_at = ticket.replied_at = ticket.followed_up_at = ticket.closed_at = None
    target = TicketStatus.IN_PROGRESS if ticket.department else TicketStatus.REGISTERED
    _move(
        session,
        ticket,
        {TicketStatus.RESOLVED, TicketStatus.REPLIED, TicketStatus.FOLLOWED_UP, TicketStatus.CLOSED},
        target,
        actor,
        reason=why,
    )


def update_caller(session: Session, ticket: Ticket, actor: str, caller_name: str, room: str) -> None:
    """Who called and from which room, as staff complete or correct the record (E3)."""
    from ivr.tickets.rooms import parse_room_code

    name, room = caller_name.strip()[:64], room.strip()
    if room and parse_room_code(room) is None:
        raise ProcedureError("房号格式应为 楼栋-单元-房号,例如 3-2-501")
    changes = {}
    if name != (ticket.caller_name or ""):
        changes["caller_name"] = [ticket.caller_name, name or None]
        ticket.caller_name = name or None
    if room and room != ticket.room:
        changes["room"] = [ticket.room, room]
        ticket.room = room
        ticket.room_from_registry = False  # a person's correction, no longer the registry's room
    if changes:
        record_event(session, ticket, "record_updated", actor, **changes)
        session.flush()


def add_note(session: Session, ticket: Ticket, actor: str, text: str, *, told_caller: bool = False) -> TicketNote:
    note = TicketNote(ticket=ticket, author=actor, told_caller=told_caller, text=_require(text, "备注内容"))
    session.add(note)
    record_event(session, ticket, "note", actor, told_caller=told_caller)
    session.flush()
    return note


def flag_for_manager(session: Session, ticket: Ticket, actor: str | None, reason: str) -> Notice:
    """重大投诉必须马上报告经理: mark the ticket major and tell the managers."""
    ticket.major = True
    return notify_managers(session, ticket, actor, reason)


STEP_NAMES = {
    "dispatch": "转交责任部门",
    "start": "开始处理",
    "analysis": "原因分析与纠正措施",
    "resolve": "处理完毕",
    "reply": "答复业主",
    "follow_up": "回访",
    "close": "关闭",
    "reopen": "重新打开",
}


@dataclass(frozen=True)
class NextStep:
    name: str
    label: str


def next_steps(ticket: Ticket) -> list[NextStep]:
    """The steps the procedure allows from the ticket's state, in order."""
    by_status: dict[TicketStatus, list[str]] = {
        TicketStatus.REGISTERED: ["dispatch"],
        TicketStatus.DISPATCHED: ["start", "dispatch"],
        TicketStatus.IN_PROGRESS: ["analysis", "resolve"],
        TicketStatus.ANALYSED: ["resolve", "analysis"],
        TicketStatus.RESOLVED: ["reply", "reopen"],
        TicketStatus.REPLIED: ["follow_up", "reopen"],
        TicketStatus.FOLLOWED_UP: ["close", "reopen"],
        TicketStatus.CLOSED: ["reopen"],
    }
    return [NextStep(name, STEP_NAMES[name]) for name in by_status[ticket.status]]
