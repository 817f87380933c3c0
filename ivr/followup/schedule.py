"""Scheduling a follow-up call (回访) when a ticket is ready for one: resolved (complaints: once the reply to the
caller is recorded). The procedure calls `schedule_follow_up`; it only writes rows (flushes).

The follow-up is due at once and its placement job is queued with the session's commit: the job, which has the
settings, applies the property's calendar — inside a call window the call goes out, outside it the follow-up
moves to the next allowed moment (`ivr.followup.calls.plan_attempt`), so the calendar lives in one place.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.db import utcnow
from ivr.followup.calls import callable_phone, opted_out, queue_placement
from ivr.models import FollowUp, FollowUpState, Ticket
from ivr.tickets.events import record_event

ACTIVE = (FollowUpState.SCHEDULED, FollowUpState.CALLING)


def schedule_follow_up(session: Session, ticket: Ticket) -> FollowUp:
    """The ticket's follow-up: the one already under way, else a new one. A ticket without a number to call
    is unreachable at once (on the call-back-by-hand list); a phone that opted out is not called."""
    existing = session.scalars(
        select(FollowUp).where(FollowUp.ticket_id == ticket.id, FollowUp.state.in_(ACTIVE))
    ).first()
    if existing is not None:
        return existing
    phone = callable_phone(ticket.caller_number)
    follow_up = FollowUp(ticket=ticket, property_id=ticket.property_id, phone=phone, due_at=utcnow(), attempts=0)
    if phone is None:
        follow_up.state, follow_up.reason = FollowUpState.UNREACHABLE, "工单没有可拨打的联系电话,请人工回访"
    elif opted_out(session, ticket.property_id, phone):
        follow_up.state, follow_up.reason = FollowUpState.OPTED_OUT, "住户已选择不再接收回访"
    else:
        follow_up.state = FollowUpState.SCHEDULED
    session.add(follow_up)
    session.flush()
    record_event(session, ticket, "follow_up_scheduled", None, follow_up=follow_up.id, state=follow_up.state.value)
    if follow_up.state == FollowUpState.SCHEDULED:
        queue_placement(session, follow_up.id)
    return follow_up
