"""Domain writes for calls, tickets and recordings. They only flush; the caller commits."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, inspect, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ivr.db import utcnow
from ivr.models import (
    Call,
    Category,
    Notice,
    Recording,
    RecordingSource,
    RecordingState,
    Ticket,
    TicketCounter,
    TicketStatus,
)
from ivr.notifications import notify_managers
from ivr.properties import property_id_for_number
from ivr.residents.registry import room_from_registry
from ivr.tickets.sla import property_timezone


class _Lookup(enum.Enum):
    NOT_DONE = "not looked up"


def get_or_create_call(
    session: Session,
    call_sid: str,
    *,
    found: Call | Literal[_Lookup.NOT_DONE] | None = _Lookup.NOT_DONE,
    **fields: str | None,
) -> Call:
    """The call with this CallSid, created on first sight (any webhook may be the first). `found` is what
    the caller's own query for this CallSid returned (the webhook frame fetches the call with its replay),
    so it is not looked up twice; the details in `fields` fill what the call lacks. A new call belongs to the
    property whose number it dialled (`to_number`)."""
    call = (
        session.scalars(select(Call).where(Call.call_sid == call_sid)).one_or_none()
        if found is _Lookup.NOT_DONE
        else found
    )
    if call is None:
        # Nothing to lazy-load for a call seen for the first time: it has no ticket and no recordings yet.
        call = Call(
            call_sid=call_sid,
            property_id=property_id_for_number(session, fields.get("to_number")),
            counters={},
            ticket=None,
            recordings=[],
        )
        session.add(call)
        _fill(call, fields)
        session.flush()  # its id, and a concurrent request's insert of the same CallSid fails here
    else:
        _fill(call, fields)  # flushed with the step's own changes
    return call


def _fill(call: Call, fields: dict[str, str | None]) -> None:
    for name, value in fields.items():
        if value and not getattr(call, name):
            setattr(call, name, value)


def bump_counter(call: Call, name: str) -> int:
    """Count one more retry of `name` on the call (no-input, wrong key…) and return the count."""
    counters = dict(call.counters or {})
    counters[name] = counters.get(name, 0) + 1
    call.counters = counters  # reassign: JSON columns do not track in-place changes
    return counters[name]


def reset_counter(call: Call, name: str) -> None:
    if call.counters and name in call.counters:
        call.counters = {k: v for k, v in call.counters.items() if k != name}


# The day's counter advanced (created at 1), SQLite's and PostgreSQL's ON CONFLICT, built once.
_COUNTER_UPSERT = {
    on_postgresql: (postgresql.insert if on_postgresql else sqlite.insert)(TicketCounter)
    .values(day=bindparam("day"), last=1)
    .on_conflict_do_update(index_elements=["day"], set_={"last": TicketCounter.last + 1})
    .returning(TicketCounter.last)
    for on_postgresql in (False, True)
}


def next_ticket_number(session: Session, timezone: str, now: datetime | None = None) -> str:
    """A number to read to the caller: local date `yymmdd` plus that day's sequence, e.g. 261127003."""
    day = (now or utcnow()).astimezone(ZoneInfo(timezone)).strftime("%y%m%d")
    bind = session.get_bind()
    statement, parameters = _COUNTER_UPSERT[bind.dialect.name == "postgresql"], {"day": day}
    if bind.dialect.name == "postgresql" and isinstance(bind, Engine):
        # The day's counter row is the one thing every new ticket writes: advance it in its own short
        # transaction, so its lock is not held through the rest of the webhook (concurrent calls would
        # queue behind it). A webhook that fails afterwards leaves a gap in the day's numbers, never a
        # duplicate. (SQLite has one writer at a time anyway, and a second connection would wait for it.)
        with bind.connect() as connection:
            sequence = connection.execute(statement, parameters).scalar_one()
            connection.commit()
    else:
        sequence = session.execute(statement, parameters).scalar_one()
    return f"{day}{sequence:03d}"


def ensure_ticket(
    session: Session,
    call: Call,
    timezone: str,
    *,
    urgent: bool = False,
    reason: str | None = None,
    note: str | None = None,
) -> Ticket:
    """The call's ticket, opened (unconfirmed) the first time anything of the caller's is kept, numbered by
    the local day of the call's property (`timezone` when it has no zone of its own)."""
    ticket = call.ticket
    if ticket is None:
        ticket = Ticket(
            number=next_ticket_number(session, property_timezone(call.property_id, timezone)),
            property_id=call.property_id,
            # Stated, not left to the column default: the ticket's clocks are stamped from it on insert.
            status=TicketStatus.REGISTERED,
            category=call.category or Category.OTHER,
            room=call.room,
            room_from_registry=room_from_registry(call),
            caller_number=call.from_number,
            call=call,
            note=note,
        )
        session.add(ticket)
    else:
        if call.room and not ticket.room:
            ticket.room = call.room
            ticket.room_from_registry = room_from_registry(call)
        if call.category and ticket.category == Category.OTHER:
            ticket.category = call.category
    # No flush of its own: the ticket is written with whatever the caller writes next (it goes out first,
    # so a recording can refer to it) or when the caller's session flushes.
    if urgent:
        mark_urgent(session, ticket, reason or "紧急情况")
    return ticket


def mark_urgent(session: Session, ticket: Ticket, reason: str) -> None:
    """Raise the ticket to urgent (once) and tell the managers at once."""
    if ticket.urgent:
        return
    ticket.urgent = True
    ticket.urgent_reason = reason
    notify_managers(session, ticket, None, f"紧急:{reason}")


def mark_notice_read(session: Session, notice: Notice, reader: str) -> None:
    """A staff member of the notice's role has read it; it leaves every console of that role."""
    notice.read_by, notice.read_at = reader, utcnow()
    session.flush()


def confirm_ticket(session: Session, ticket: Ticket) -> Ticket:
    """The caller heard the read-back and said it is right (E4)."""
    if not ticket.confirmed:
        ticket.confirmed = True
        ticket.confirmed_at = utcnow()
        session.flush()
    return ticket


def register_recording(
    session: Session,
    call: Call,
    recording_sid: str,
    *,
    source_url: str | None,
    duration: float | None = None,
    channels: int | None = None,
    source: RecordingSource = RecordingSource.MESSAGE,
    twilio_status: str | None = None,
    ticket: Ticket | None = None,
) -> Recording:
    """Record that Twilio has (or is making) this recording, on `ticket` when given; idempotent on
    RecordingSid."""
    recording = _find_recording(session, call, recording_sid)
    if recording is None:
        # A new recording has no transcripts yet: said so, reading them (the read-back) costs no query.
        recording = Recording(
            recording_sid=recording_sid,
            call=call,
            source=source,
            ticket=ticket,
            transcripts=[],
            live_transcript=None,
        )
        session.add(recording)
    elif ticket is not None:
        recording.ticket = ticket
    if source_url and not recording.source_url:
        recording.source_url = source_url
    if duration is not None and recording.duration is None:
        recording.duration = duration
    if channels:
        recording.channels = channels
    if twilio_status:
        recording.twilio_status = twilio_status
        if twilio_status in ("absent", "failed") and recording.state != RecordingState.STORED:
            recording.state = RecordingState.FAILED
            recording.error = f"Twilio reported the recording {twilio_status}"
    if recording.id is None:
        session.flush()  # its id (a job names it); changes to a known one go out with the caller's next write
    return recording


_RECORDING_BY_SID = select(Recording).where(Recording.recording_sid == bindparam("sid"))
_CALL_RECORDINGS_OR_BY_SID = (
    select(Recording)
    .where(or_(Recording.call_id == bindparam("call_id"), Recording.recording_sid == bindparam("sid")))
    .order_by(Recording.id)  # the relationship's order
)


def _find_recording(session: Session, call: Call, recording_sid: str) -> Recording | None:
    """The recording with this RecordingSid. When the call's recordings are not loaded yet they come in the
    same query (the read-back after a take looks at them), so a take costs one query, not two."""
    # Without autoflush: what is pending (a ticket opened for this take) goes out with the recording, in one
    # flush. A recording is only ever created below and flushed at once, so none is pending unseen.
    with session.no_autoflush:
        if call.id is None or "recordings" not in inspect(call).unloaded:
            return session.scalars(_RECORDING_BY_SID, {"sid": recording_sid}).one_or_none()
        found = session.scalars(_CALL_RECORDINGS_OR_BY_SID, {"call_id": call.id, "sid": recording_sid}).all()
    set_committed_value(call, "recordings", [recording for recording in found if recording.call_id == call.id])
    return next((recording for recording in found if recording.recording_sid == recording_sid), None)


ABANDONED_NOTE = "来电在留言前挂断,请回电联系"


def keep_take(
    session: Session,
    call: Call,
    timezone: str,
    recording_sid: str | None,
    *,
    source_url: str | None = None,
    duration: float | None = None,
    twilio_status: str | None = None,
) -> Recording | None:
    """Put a take of the caller's message on the call's ticket, opening the ticket (urgent after the
    emergency key) the first time; without a RecordingSid only the ticket is opened."""
    ticket = ensure_ticket(session, call, timezone, urgent=call.category == Category.EMERGENCY)
    if ticket.note == ABANDONED_NOTE:  # the take arrived after the hang-up was noted
        ticket.note = None
    if not recording_sid:
        return None
    return register_recording(
        session,
        call,
        recording_sid,
        source_url=source_url,
        duration=duration,
        twilio_status=twilio_status,
        ticket=ticket,
    )


def refresh_ticket_transcript(session: Session, ticket: Ticket) -> None:
    """A take of the ticket was transcribed, so its text (derived from the takes: `Ticket.text`) may have
    changed; what the caller said may make it urgent."""
    from ivr.speech.triage import triage

    if not ticket.text:
        return
    found = triage(ticket.text)
    if found.urgent:
        mark_urgent(session, ticket, "留言提到:" + "、".join(found.matched))
    session.flush()
