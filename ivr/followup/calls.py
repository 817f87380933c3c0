"""Placing follow-up calls (回访): the placement job, the sweep that queues due follow-ups, what an attempt that
reached nobody leads to, the opt-out, and the call-back-by-hand list. No Flask here.

The calendar is enforced where the call is placed: `place_follow_up_call` checks `within_window` at the moment
it would dial and, outside a window, moves the follow-up to `next_allowed` and dials nothing, whatever made it
due. An attempt that reached nobody (no answer, busy, failed, an answering machine, hung up before answering) is
tried again in a later window, at least ATTEMPTS_APART after the last, at most MAX_ATTEMPTS times in all; then the
follow-up is unreachable and its ticket is on `call_back_by_hand` (with those of residents who opted out).

Each follow-up has one placement job row (jobs are one per kind and subject); it is armed again for every later
attempt (`queue_placement`), the follow-up row keeping the story of every attempt and the ticket's timeline each step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, delete, exists, select, update
from sqlalchemy.orm import Session, aliased, selectinload

from ivr.config import Settings
from ivr.db import utcnow
from ivr.followup.windows import CallCalendar, call_calendar
from ivr.jobs import JobContext, PermanentJobError, job, periodic
from ivr.models import FollowUp, FollowUpOptOut, FollowUpState, Job, JobState, Ticket, TicketStatus
from ivr.properties import LineProperty, line_property
from ivr.tickets.events import record_event

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
ATTEMPTS_APART = timedelta(hours=2)
# A call still "calling" this long after it was placed never had its final status callback (the server was
# down, the callback lost): it counts as an attempt that reached nobody.
STUCK_AFTER = timedelta(hours=1)
# Tickets a follow-up call is about: resolved (repairs and the rest) or replied to (complaints).
AWAITING_FOLLOW_UP = {TicketStatus.RESOLVED, TicketStatus.REPLIED}
ANSWER_PATH = "/twilio/outbound/answer"  # steps of ivr/telephony/outbound.py
STATUS_PATH = "/twilio/outbound/status"
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
FINAL_CALL_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}
OUTCOME_LABELS = {
    "no-answer": "无人接听",
    "busy": "占线",
    "failed": "呼叫失败",
    "canceled": "呼叫取消",
    "machine": "语音信箱或答录机接听",
    "hung-up": "接听后未答完即挂断",
    "lost": "未收到通话结果",
    "refused": "号码无法呼叫",
}


class FollowUpCallRefused(PermanentJobError):
    """The call cannot be placed at all (no caller ID for the property); the message says what to set."""


class TwilioNotReached(Exception):
    """Twilio did not take the call request (busy, 5xx, network): the job tries again later."""


def follow_up_calendar(line: LineProperty) -> CallCalendar:
    """When the property's residents may be called: its own windows and days off (else IVR_CALL_WINDOWS and
    IVR_CALL_DAYS_OFF, filled in by `with_settings`) in its time zone."""
    return call_calendar(line.call_windows, line.call_days_off, line.timezone)


def caller_id(line: LineProperty, settings: Settings) -> str | None:
    """The number the resident sees: the property's own first number; the default property, which may have
    none, calls from IVR_SMS_FROM. Another property without a number of its own has none (its residents
    would see a number that is not their 物业's)."""
    if line.numbers:
        return line.numbers[0]
    if line.is_default and settings.sms_from:
        return settings.sms_from
    return None


def callable_phone(number: str | None) -> str | None:
    """The number as E.164 when it can be dialled (not empty, anonymous or malformed), else None."""
    number = (number or "").strip()
    if number.startswith("+") and number[1:].isdigit() and 8 <= len(number) <= 16:
        return number
    return None


# Opting out -------------------------------------------------------------------------------------------------


def opted_out(session: Session, property_id: int, phone: str | None) -> bool:
    """Whether this phone asked the property for no more follow-up calls."""
    if not phone:
        return False
    found = session.scalars(
        select(FollowUpOptOut.id).where(FollowUpOptOut.property_id == property_id, FollowUpOptOut.phone == phone)
    ).first()
    return found is not None


def record_opt_out(session: Session, follow_up: FollowUp, call_sid: str | None) -> None:
    """The resident pressed 9: keep it for the property and phone, and call them about nothing more."""
    if follow_up.phone and not opted_out(session, follow_up.property_id, follow_up.phone):
        session.add(
            FollowUpOptOut(
                property_id=follow_up.property_id,
                phone=follow_up.phone,
                ticket_id=follow_up.ticket_id,
                call_sid=call_sid,
            )
        )
    reason = "住户在回访电话中选择不再接收回访"
    others = session.scalars(
        select(FollowUp).where(
            FollowUp.property_id == follow_up.property_id,
            FollowUp.phone == follow_up.phone,
            FollowUp.state == FollowUpState.SCHEDULED,
            FollowUp.id != follow_up.id,
        )
    ).all()
    for each in [follow_up, *others]:
        each.state = FollowUpState.OPTED_OUT
        each.reason = reason
        record_event(session, each.ticket, "follow_up_opted_out", None, follow_up=each.id, call_sid=call_sid)
    session.flush()


# The placement job ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedCall:
    """A call to place now: the follow-up it is for and the request for Twilio."""

    follow_up_id: int
    to: str
    from_: str
    answer_url: str
    status_url: str


def queue_placement(session: Session, follow_up_id: int) -> int | None:
    """Queue the follow-up's placement job when the session commits: a new row, or its finished row armed
    again (a queued or running one is left alone). Returns the new job's id, or None."""
    session.execute(
        delete(Job).where(
            Job.kind == place_follow_up_call.name,
            Job.subject_id == follow_up_id,
            Job.state.in_([JobState.DONE, JobState.FAILED]),
        )
    )
    return place_follow_up_call.schedule(session, follow_up_id)


def _stop(session: Session, follow_up: FollowUp, state: FollowUpState, reason: str) -> None:
    follow_up.state = state
    follow_up.reason = reason
    record_event(session, follow_up.ticket, f"follow_up_{state.value}", None, follow_up=follow_up.id, reason=reason)


def plan_attempt(
    session: Session, follow_up_id: int, settings: Settings, now: datetime
) -> PlannedCall | FollowUpCallRefused | None:
    """Decide whether the follow-up is called now and, if so, claim the attempt (state calling, counted).
    Outside a call window it is moved to the next allowed moment and nothing is called. When the property has
    no number to call from, the follow-up is unreachable and the refusal (to raise) is returned."""
    follow_up = session.get(FollowUp, follow_up_id)
    if follow_up is None or follow_up.state != FollowUpState.SCHEDULED:
        return None
    ticket = follow_up.ticket
    if ticket.status not in AWAITING_FOLLOW_UP:
        _stop(session, follow_up, FollowUpState.CANCELLED, f"工单已不在待回访状态({ticket.status.value})")
        return None
    if opted_out(session, follow_up.property_id, follow_up.phone):
        _stop(session, follow_up, FollowUpState.OPTED_OUT, "住户已选择不再接收回访")
        return None
    line = line_property(session, follow_up.property_id, settings)
    calendar = follow_up_calendar(line)
    earliest = now
    if follow_up.attempts == 0:  # the first call waits IVR_FOLLOW_UP_DELAY_MINUTES after the resolve
        earliest = max(now, follow_up.created_at + timedelta(minutes=settings.follow_up_delay_minutes))
    if earliest > now or not calendar.within_window(now):
        # Whatever made it due: no call outside a window. The sweep queues it again at the next one.
        follow_up.due_at = calendar.next_allowed(earliest)
        return None
    if follow_up.due_at > now:
        return None  # not due yet; the sweep queues it when it is
    phone, from_ = follow_up.phone, caller_id(line, settings)
    if phone is None:
        _stop(session, follow_up, FollowUpState.UNREACHABLE, "工单没有可拨打的联系电话,请人工回访")
        return None
    if from_ is None:
        reason = f"物业「{line.name}」没有外呼号码,回访电话无法拨出,请人工回访"
        _stop(session, follow_up, FollowUpState.UNREACHABLE, reason)
        return FollowUpCallRefused(
            f"property {line.code!r} has no number of its own to call from: add one (ivr property create "
            f"{line.code} --number …)" + (" or set IVR_SMS_FROM" if line.is_default else "")
        )
    claimed = session.execute(
        update(FollowUp)
        .where(FollowUp.id == follow_up_id, FollowUp.state == FollowUpState.SCHEDULED)
        .values(
            state=FollowUpState.CALLING,
            attempts=FollowUp.attempts + 1,
            last_attempt_at=now,
            last_outcome=None,
            call_sid=None,
            updated_at=now,
        )
        .returning(FollowUp.id)
    ).first()
    if claimed is None:
        return None  # another run took it
    session.refresh(follow_up)
    # Which follow-up and attempt the call is, in the signed URLs: its first webhook may come before the
    # CallSid is noted below, and a late one of an earlier attempt must not be taken for this one.
    query = f"follow_up={follow_up_id}&attempt={follow_up.attempts}"
    base = settings.public_url
    return PlannedCall(follow_up_id, phone, from_, f"{base}{ANSWER_PATH}?{query}", f"{base}{STATUS_PATH}?{query}")


def placement_gave_up(context: JobContext, follow_up_id: int, error: str) -> None:
    """Give-up hook: the call could not be placed after every retry; the ticket goes on the by-hand list."""
    with context.database.session() as session:
        follow_up = session.get(FollowUp, follow_up_id)
        if follow_up is not None and follow_up.state in (FollowUpState.SCHEDULED, FollowUpState.CALLING):
            _stop(session, follow_up, FollowUpState.UNREACHABLE, f"回访电话无法拨出,请人工回访:{error[:300]}")


@job("place_follow_up_call", give_up=placement_gave_up)
def place_follow_up_call(context: JobContext, follow_up_id: int) -> None:
    """Job handler: place the follow-up's call through Twilio (POST …/Calls.json) if, now, it may be placed."""
    import requests
    from twilio.base.exceptions import TwilioRestException

    from ivr.twilio_rest import twilio_client

    settings = context.settings
    now = utcnow()
    with context.database.session() as session:
        planned = plan_attempt(session, follow_up_id, settings, now)
    if planned is None:
        return
    if isinstance(planned, FollowUpCallRefused):
        raise planned  # kept on the job row for `ivr jobs`; the follow-up already says so for people
    try:
        call = twilio_client(settings).calls.create(
            to=planned.to,
            from_=planned.from_,
            url=planned.answer_url,
            method="POST",
            status_callback=planned.status_url,
            status_callback_method="POST",
            status_callback_event=STATUS_EVENTS,
            machine_detection="Enable",
        )
    except TwilioRestException as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
            with context.database.session() as session:
                follow_up = session.get(FollowUp, follow_up_id)
                assert follow_up is not None
                record_event(
                    session, follow_up.ticket, "follow_up_call_refused", None, status=exc.status, code=exc.code
                )
                attempt_ended(session, follow_up, "refused", settings, now)
            return
        _release(context, follow_up_id)
        raise TwilioNotReached(f"Twilio did not take the call ({exc.status} {exc.code}): {exc.msg}") from exc
    except requests.ReadTimeout:
        # The request went out and Twilio did not answer in time: the call may well be ringing. Placing it again
        # could ring the resident twice, so the attempt stays "calling": if it was placed, its webhooks find it by
        # the signed URL's follow_up and attempt; if not, the sweep counts it as lost after STUCK_AFTER and it
        # is tried again in a later window. A fault delays the follow-up; it never doubles the call.
        log.warning(
            "follow-up %d: Twilio did not answer the call request in time; waiting for its webhooks", follow_up_id
        )
        with context.database.session() as session:
            follow_up = session.get(FollowUp, follow_up_id)
            assert follow_up is not None
            record_event(session, follow_up.ticket, "follow_up_call", None, attempt=follow_up.attempts, call_sid=None)
        return
    except requests.RequestException as exc:
        _release(context, follow_up_id)
        raise TwilioNotReached(f"could not reach Twilio ({type(exc).__name__}): {exc}") from exc
    with context.database.session() as session:
        follow_up = session.get(FollowUp, follow_up_id)
        assert follow_up is not None
        if follow_up.call_sid is None:
            follow_up.call_sid = call.sid  # unless its answer webhook came first and said so
        record_event(session, follow_up.ticket, "follow_up_call", None, attempt=follow_up.attempts, call_sid=call.sid)


def _release(context: JobContext, follow_up_id: int) -> None:
    """The call was not placed: the attempt is not counted and the follow-up waits for the job's retry."""
    with context.database.session() as session:
        session.execute(
            update(FollowUp)
            .where(FollowUp.id == follow_up_id, FollowUp.state == FollowUpState.CALLING)
            .values(state=FollowUpState.SCHEDULED, attempts=FollowUp.attempts - 1)
        )


# Attempts that reached nobody -------------------------------------------------------------------------------


def next_attempt_at(calendar: CallCalendar, last_attempt: datetime, now: datetime) -> datetime:
    """The next try: in a later window than the last attempt's, at least ATTEMPTS_APART after it."""
    earliest = max(now, last_attempt + ATTEMPTS_APART, calendar.window_end(last_attempt) or last_attempt)
    return calendar.next_allowed(earliest)


def attempt_ended(session: Session, follow_up: FollowUp, outcome: str, settings: Settings, now: datetime) -> None:
    """An attempt reached nobody (`outcome`: no-answer, busy, failed, machine…): try again later, or after
    MAX_ATTEMPTS put the ticket on the call-back-by-hand list."""
    follow_up.last_outcome = outcome
    label = OUTCOME_LABELS.get(outcome, outcome)
    if outcome == "refused":  # Twilio refuses this number (invalid, not allowed): calling again is no use
        _stop(session, follow_up, FollowUpState.UNREACHABLE, f"回访电话{label},请核对号码后人工回访")
        return
    if follow_up.attempts >= MAX_ATTEMPTS:
        reason = f"回访电话{follow_up.attempts}次未能完成(最后一次:{label}),请人工回访"
        _stop(session, follow_up, FollowUpState.UNREACHABLE, reason)
        return
    line = line_property(session, follow_up.property_id, settings)
    calendar = follow_up_calendar(line)
    follow_up.state = FollowUpState.SCHEDULED
    follow_up.due_at = next_attempt_at(calendar, follow_up.last_attempt_at or now, now)
    local = follow_up.due_at.astimezone(ZoneInfo(line.timezone))
    follow_up.reason = f"第{follow_up.attempts}次回访{label},{local:%m-%d %H:%M}再次拨打"
    record_event(
        session,
        follow_up.ticket,
        "follow_up_retry",
        None,
        follow_up=follow_up.id,
        attempt=follow_up.attempts,
        outcome=outcome,
        next_at=follow_up.due_at.isoformat(),
    )


# The sweep --------------------------------------------------------------------------------------------------


def queue_due_follow_ups(context: JobContext) -> int:
    """Queue the placement of every follow-up now due, and count calls that never reported back as attempts
    that reached nobody. Returns how many were queued."""
    now = utcnow()
    with context.database.session() as session:
        stuck = session.scalars(
            select(FollowUp).where(
                FollowUp.state == FollowUpState.CALLING, FollowUp.last_attempt_at < now - STUCK_AFTER
            )
        ).all()
        for follow_up in stuck:
            attempt_ended(session, follow_up, "lost", context.settings, now)
        session.flush()
        due = session.scalars(
            select(FollowUp.id).where(FollowUp.state == FollowUpState.SCHEDULED, FollowUp.due_at <= now)
        ).all()
        queued = [follow_up_id for follow_up_id in due if queue_placement(session, follow_up_id) is not None]
    return len(queued)


@periodic("follow_up_calls", minute="*/5")
def queue_follow_ups_periodically(context: JobContext) -> None:
    """The periodic task: queue due follow-up calls; log (never raise) what went wrong."""
    try:
        queued = queue_due_follow_ups(context)
    except Exception:
        log.exception("could not queue the due follow-up calls; the next sweep tries again")
        return
    if queued:
        log.info("queued %d follow-up call(s)", queued)


# The list for people ----------------------------------------------------------------------------------------


# The states whose ticket, still waiting for its follow-up, is someone's to call back by hand: the line could
# not make it (unreachable: attempts used up, no number, a refused number, no caller ID), or the resident asked
# for no more follow-up calls (按9) — the standard still wants the result followed up (回访) by a person.
BY_HAND = (FollowUpState.UNREACHABLE, FollowUpState.OPTED_OUT)


def call_back_by_hand_query() -> Select[Any]:
    """The call-back-by-hand list as a query (oldest first) for a page to narrow and page: each ticket that still
    waits for its follow-up once, by its latest follow-up, when that one is unreachable or opted out."""
    later = aliased(FollowUp)
    superseded = exists().where(later.ticket_id == FollowUp.ticket_id, later.id > FollowUp.id)  # by ticket_id's index
    return (
        select(FollowUp)
        .join(FollowUp.ticket)
        .where(FollowUp.state.in_(BY_HAND), Ticket.status.in_(AWAITING_FOLLOW_UP), ~superseded)
        .options(selectinload(FollowUp.ticket))
        .order_by(FollowUp.updated_at, FollowUp.id)
    )


def call_back_by_hand(session: Session, property_ids: frozenset[int] | None = None) -> list[FollowUp]:
    """Follow-ups the line could not make (unreachable) or may not make (opted out) whose ticket still waits for
    its follow-up, oldest first, for the night shift to call back by hand (回拨); `property_ids` narrows it
    (None: every property)."""
    query = call_back_by_hand_query()
    if property_ids is not None:
        query = query.where(FollowUp.property_id.in_(property_ids))
    return list(session.scalars(query))
