"""Staff call-backs from the console (回拨): what the ticket page offers, the request, the placement job, and how
the call ended. No Flask here; the call's webhook steps are ivr/telephony/call_back.py.

Twilio rings the staff member's own phone first (their account's phone), from the property's number; when they
answer, the line dials the resident with the property's number as caller ID and records both sides on separate
channels (`record-from-answer-dual`: the staff member's leg is the first channel, the resident's the second).
The recording is scored against the etiquette standard like a transfer (ivr.qa.evaluations), with the outbound
greeting for E2.

A resident is not called at home at meal times or at night (打电话到居民住家,应避免吃饭的时间): outside the
property's call windows the request needs the staff member's reason, kept on the call-back and the timeline. A
request the queue could not place within STALE_AFTER is not placed at all: a phone that rings minutes after
the click, when the staff member has moved on, would call the resident at a moment nobody chose.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.db import utcnow
from ivr.followup.calls import callable_phone, caller_id, follow_up_calendar
from ivr.jobs import JobContext, job
from ivr.models import CallBack, CallBackState, Ticket, User
from ivr.properties import line_property
from ivr.tickets.events import record_event

log = logging.getLogger(__name__)

STAFF_ANSWER_PATH = "/twilio/call-back/staff"  # steps of ivr/telephony/call_back.py
STAFF_STATUS_PATH = "/twilio/call-back/status"
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
STALE_AFTER = timedelta(minutes=2)
# A call-back not over after this long lost its final callback (the server was down): a new one may be asked for.
BUSY_FOR = timedelta(minutes=30)
UNDER_WAY = (CallBackState.QUEUED, CallBackState.CALLING_STAFF, CallBackState.CALLING_RESIDENT)
REASON_MAX_CHARS = 200
STATE_LABELS = {
    CallBackState.QUEUED: "正在拨打您的电话",
    CallBackState.CALLING_STAFF: "正在拨打您的电话",
    CallBackState.CALLING_RESIDENT: "正在接通住户",
    CallBackState.DONE: "已通话",
    CallBackState.FAILED: "未接通",
}
DIAL_OUTCOMES = {
    "no-answer": "住户未接听",
    "busy": "住户占线",
    "failed": "住户号码呼叫失败",
    "canceled": "您在住户接听前挂断",
}
REFUSED = "电话平台拒绝拨打您的号码,请核对账号中的电话"
NOT_REACHED = "无法连接电话平台,回拨未拨出,请稍后重试"
STAFF_OUTCOMES = {
    "no-answer": "您的电话未接听",
    "busy": "您的电话占线",
    "failed": "您的电话呼叫失败",
    "canceled": "呼叫已取消",
}


class CallBackRefused(ValueError):
    """A call-back that cannot be placed; the message (Chinese) says why and what to do."""


@dataclass(frozen=True)
class CallBackOffer:
    """What the ticket page offers the staff member: whom the line would ring, and a warning at meal times or at
    night (a reason is then required). `problem` says why a call-back is not possible at all."""

    staff_phone: str | None
    resident_phone: str | None
    warning: str | None
    problem: str | None

    @property
    def possible(self) -> bool:
        return self.problem is None


def call_back_offer(session: Session, ticket: Ticket, user: User, settings: Settings, now: datetime) -> CallBackOffer:
    """The call-back button's state for this staff member on this ticket, now."""
    staff_phone = callable_phone(user.phone)
    resident_phone = callable_phone(ticket.caller_number)
    line = line_property(session, ticket.property_id, settings)
    problem = None
    if resident_phone is None:
        problem = "来电号码无法回拨(未显示号码或号码不完整)"
    elif staff_phone is None:
        problem = "您的账号没有登记电话,无法回拨:请管理员在「账号」中为您登记电话(如 +8613800000000)"
    elif caller_id(line, settings) is None:
        problem = f"物业「{line.name}」没有外呼号码,无法回拨:请管理员为该物业登记号码"
    elif (busy := call_back_under_way(session, ticket, now)) is not None:
        problem = f"{busy.user.display_name or busy.user.username}的回拨正在进行中"
    return CallBackOffer(staff_phone, resident_phone, follow_up_calendar(line).why_not_now(now), problem)


def call_back_under_way(session: Session, ticket: Ticket, now: datetime) -> CallBack | None:
    """The ticket's call-back still ringing or talking, if any (one at a time: the resident's phone rings once;
    the database holds it to one, `uq_call_backs_under_way`). One under way for longer than BUSY_FOR lost its
    final callback: it is ended here, so that it holds up no later call-back."""
    found = session.scalars(
        select(CallBack).where(CallBack.ticket_id == ticket.id, CallBack.state.in_(UNDER_WAY))
    ).first()
    if found is not None and found.created_at <= now - BUSY_FOR:
        end_call_back(session, found, CallBackState.FAILED, "未收到通话结果")
        session.flush()
        return None
    return found


def request_call_back(
    session: Session, ticket: Ticket, user: User, settings: Settings, now: datetime, reason: str
) -> CallBack:
    """Queue a call-back: refused with the reason when it cannot be placed, or when it is a meal time or night
    for the property and no reason is given."""
    offer = call_back_offer(session, ticket, user, settings, now)
    if offer.problem is not None:
        raise CallBackRefused(offer.problem)
    assert offer.staff_phone is not None and offer.resident_phone is not None
    reason = " ".join(reason.split())[:REASON_MAX_CHARS]
    if offer.warning is not None and not reason:
        raise CallBackRefused(f"{offer.warning}。如确需现在回拨,请填写原因")
    call_back = CallBack(
        ticket=ticket,
        property_id=ticket.property_id,
        user=user,
        staff_phone=offer.staff_phone,
        resident_phone=offer.resident_phone,
        outside_window=offer.warning is not None,
        reason=reason or None,
        created_at=now,
    )
    try:
        with session.begin_nested():  # two clicks at once: the second meets the first in the unique index
            session.add(call_back)
    except IntegrityError:
        raise CallBackRefused("已有回拨正在进行,请稍候") from None
    record_event(
        session,
        ticket,
        "call_back_requested",
        user.username,
        call_back=call_back.id,
        **({"outside_window": offer.warning, "reason": reason} if offer.warning else {}),
    )
    place_call_back.schedule(session, call_back.id)
    return call_back


def calls_back_on(session: Session, ticket: Ticket) -> list[CallBack]:
    """The ticket's call-backs, newest first, for its page."""
    return list(session.scalars(select(CallBack).where(CallBack.ticket_id == ticket.id).order_by(CallBack.id.desc())))


def call_back_of_call(session: Session, call_sid: str, wanted: str = "") -> CallBack | None:
    """The call-back a webhook of the staff member's leg is about: by its CallSid, else (the answer may come
    before the placement job noted the CallSid) the `call_back` of the signed URL when it has no call yet."""
    found = session.scalars(select(CallBack).where(CallBack.call_sid == call_sid)).first()
    if found is None and wanted.isdigit():
        candidate = session.get(CallBack, int(wanted))
        if candidate is not None and candidate.call_sid is None and candidate.state == CallBackState.CALLING_STAFF:
            candidate.call_sid = call_sid
            found = candidate
    return found


def call_back_of(session: Session, call_id: int) -> CallBack | None:
    """The call-back whose staff leg is this call (its Call row), if it is one."""
    return session.scalars(select(CallBack).where(CallBack.call_id == call_id)).first()


def end_call_back(session: Session, call_back: CallBack, state: CallBackState, outcome: str) -> None:
    """The call-back is over (talked, or not connected), said on the ticket's timeline."""
    if call_back.state in (CallBackState.DONE, CallBackState.FAILED):
        return
    call_back.state = state
    call_back.outcome = outcome
    kind = "call_back_done" if state == CallBackState.DONE else "call_back_failed"
    record_event(session, call_back.ticket, kind, call_back.user.username, call_back=call_back.id, outcome=outcome)


# The placement job ------------------------------------------------------------------------------------------


def call_back_gave_up(context: JobContext, call_back_id: int, error: str) -> None:
    """Give-up hook: the job failed unexpectedly; the ticket page says the call-back was not placed."""
    with context.database.session() as session:
        call_back = session.get(CallBack, call_back_id)
        if call_back is not None:
            end_call_back(session, call_back, CallBackState.FAILED, "系统故障,回拨未拨出,请重试")


@job("place_call_back", give_up=call_back_gave_up)
def place_call_back(context: JobContext, call_back_id: int) -> None:
    """Job handler: ring the staff member's phone through Twilio (POST …/Calls.json). Placed once or not at all:
    Twilio out of reach, or the request older than STALE_AFTER, ends it as not connected (the staff member
    asks again), rather than ringing someone later."""
    import requests
    from twilio.base.exceptions import TwilioRestException

    from ivr.twilio_rest import twilio_client

    settings = context.settings
    now = utcnow()
    with context.database.session() as session:
        call_back = session.get(CallBack, call_back_id)
        if call_back is None or call_back.state != CallBackState.QUEUED:
            return
        if call_back.created_at < now - STALE_AFTER:
            end_call_back(session, call_back, CallBackState.FAILED, "排队超时,回拨未拨出,请重新回拨")
            return
        from_ = caller_id(line_property(session, call_back.property_id, settings), settings)
        if from_ is None:
            end_call_back(session, call_back, CallBackState.FAILED, "物业没有外呼号码,回拨未拨出")
            return
        claimed = session.execute(
            update(CallBack)
            .where(CallBack.id == call_back_id, CallBack.state == CallBackState.QUEUED)
            .values(state=CallBackState.CALLING_STAFF, updated_at=now)
            .returning(CallBack.id)
        ).first()
        if claimed is None:
            return  # another run took it
        staff_phone = call_back.staff_phone
    query = f"call_back={call_back_id}"
    try:
        call = twilio_client(settings).calls.create(
            to=staff_phone,
            from_=from_,
            url=f"{settings.public_url}{STAFF_ANSWER_PATH}?{query}",
            method="POST",
            status_callback=f"{settings.public_url}{STAFF_STATUS_PATH}?{query}",
            status_callback_method="POST",
            status_callback_event=STATUS_EVENTS,
        )
    except (TwilioRestException, requests.RequestException) as exc:
        log.warning("call-back %d not placed: %s", call_back_id, exc)
        status = getattr(exc, "status", None)
        with context.database.session() as session:
            call_back = session.get(CallBack, call_back_id)
            assert call_back is not None
            refused = status is not None and 400 <= status < 500 and status != 429
            outcome = REFUSED if refused else NOT_REACHED
            end_call_back(session, call_back, CallBackState.FAILED, outcome)
        return
    with context.database.session() as session:
        call_back = session.get(CallBack, call_back_id)
        assert call_back is not None
        if call_back.call_sid is None:
            call_back.call_sid = call.sid  # unless its answer webhook came first and said so
