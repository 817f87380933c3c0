"""The caller's own score of the call that reported a ticket: 1–5 by keypad at the end of an inbound call, when
the call's property asks (`Property.ask_satisfaction`). Kept on the ticket and its timeline. No Flask here."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ivr.models import Ticket
from ivr.tickets.events import record_event

SCORES = range(1, 6)  # 1 非常不满意 … 5 非常满意
SCORE_LABELS = {5: "非常满意", 4: "满意", 3: "一般", 2: "不满意", 1: "非常不满意"}  # as the question says them
EVENT_KIND = "call_satisfaction"


def record_call_satisfaction(session: Session, ticket: Ticket, score: int) -> bool:
    """Keep the caller's score on the ticket, once: the question is asked once a call, so a second score for
    the same ticket (a retried or replayed webhook) changes nothing and adds no line to the timeline. True when
    this score was kept. Flushes only."""
    if score not in SCORES:
        raise ValueError(f"a call satisfaction score is 1–5, not {score!r}")
    # A conditional UPDATE rather than a read then a write: two deliveries of the same keypress running at once
    # (Twilio retries a slow webhook) cannot both see "no score yet"; the second waits for the first's row lock
    # and then matches no row.
    kept = cast(
        "CursorResult[Any]",
        session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.call_satisfaction.is_(None))
            .values(call_satisfaction=score)
            .execution_options(synchronize_session=False)
        ),
    )
    if kept.rowcount != 1:
        return False
    set_committed_value(ticket, "call_satisfaction", score)  # as written: nothing more for the flush to do
    record_event(session, ticket, EVENT_KIND, None, score=score)
    session.flush()
    return True
