"""GET /api/tickets, /api/tickets/<id>, /api/recordings/<sid>/audio: what the token may see under the access
policy (ivr.access), each read audited (ivr.audit)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, g, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from werkzeug.exceptions import HTTPException

from ivr.access import Principal, ServiceToken, recording_access, ticket_access, ticket_scope
from ivr.audit import LIST_TICKETS, READ_TICKET, Reader, record_listen, record_read
from ivr.models import (
    ApiToken,
    Call,
    Category,
    LiveTranscript,
    Recording,
    RecordingState,
    Ticket,
    TicketStatus,
    Transcript,
)
from ivr.properties import property_directory
from ivr.qa.evaluations import evaluation_of_call
from ivr.recordings.serving import stored_recording_response
from ivr.runtime import current_database, current_settings
from ivr.staff import TokenRefused, token_owner
from ivr.web.access import enforce, property_id_of_code
from ivr.web.auth import StaffUser

blueprint = Blueprint("api", __name__, url_prefix="/api")
MAX_PAGE = 200


@blueprint.errorhandler(HTTPException)
def json_error(error: HTTPException) -> ResponseReturnValue:
    """API errors as JSON, with the reason."""
    response = jsonify(error=error.description or error.name)
    response.status_code = error.code or 500
    if error.code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="ivr"'
    return response


@blueprint.before_request
def require_token() -> None:
    """Every API request needs `Authorization: Bearer <token>` from `ivr token create`."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(401, "missing bearer token")
    with current_database().session() as session:
        try:
            record = token_owner(session, token.strip())
        except TokenRefused as refused:
            abort(401, str(refused))
        g.api_token_id = record.id
        # A token carries its account's role; a service token (`--service`, no account) sees all.
        g.api_staff = StaffUser(record.user) if record.user is not None else None


def api_principal() -> Principal:
    """Who the token acts for under the access policy: its account, or the program of a service token."""
    return g.api_staff if g.api_staff is not None else ServiceToken(g.api_token_id)


def api_reader(session: Session) -> Reader:
    """The token as the audit records it: its account's username, or `token:<name>` for a service token."""
    if g.api_staff is not None:
        actor = g.api_staff.username
    else:
        token = session.get(ApiToken, g.api_token_id)
        actor = f"token:{token.name if token else g.api_token_id}"
    return Reader(
        actor=actor,
        via="api",
        user_id=g.api_staff.id if g.api_staff is not None else None,
        token_id=g.api_token_id,
        remote_addr=request.remote_addr,
    )


def transcript_json(transcript: Transcript) -> dict[str, Any]:
    """One channel: the machine's text and timed words, and a person's correction (null when none)."""
    return {
        "channel": transcript.channel,
        "text": transcript.text,
        "corrected_text": transcript.corrected_text,
        "model": transcript.model,
        "words": transcript.words,
    }


def recording_json(recording: Recording) -> dict[str, Any]:
    stored = recording.state == RecordingState.STORED
    return {
        "sid": recording.recording_sid,
        "source": recording.source,
        "state": recording.state.value,
        "sha256": recording.sha256,
        "size": recording.size,
        "duration": recording.duration,
        "channels": recording.channels,
        "url": f"{current_settings().public_url}/api/recordings/{recording.recording_sid}/audio" if stored else None,
        "error": recording.error,
        "needs_manual_transcription": recording.needs_manual_transcription,
        "transcription_error": recording.transcription_error,
        "transcripts": [transcript_json(t) for t in recording.transcripts],
        "live_transcript": live_transcript_json(recording.live_transcript) if recording.live_transcript else None,
    }


def live_transcript_json(live: LiveTranscript) -> dict[str, Any]:
    """What was heard while the caller recorded (read back to them); `transcripts` stay authoritative."""
    return {
        "text": live.text,
        "mean_confidence": live.mean_confidence,
        "duration": live.duration,
        "model": live.model,
        "words": live.words,
    }


def ticket_json(session: Session, ticket: Ticket) -> dict[str, Any]:
    """The ticket as staff tools see it (E3: time, room, caller, the matter), with its property's code."""
    zone = ZoneInfo(current_settings().timezone)
    call = ticket.call
    return {
        "id": ticket.id,
        "number": ticket.number,
        "property": property_directory(session).stored(ticket.property_id).code,
        "category": ticket.category.value,
        "status": ticket.status.value,
        "urgent": ticket.urgent,
        "urgent_reason": ticket.urgent_reason,
        "room": ticket.room,
        "caller": ticket.caller_number,
        "caller_name": ticket.caller_name,
        "call_sid": call.call_sid if call else None,
        "called_at": call.started_at.isoformat() if call else None,
        "confirmed": ticket.confirmed,
        "confirmed_at": ticket.confirmed_at.isoformat() if ticket.confirmed_at else None,
        "created_at": ticket.created_at.isoformat(),
        "created_at_local": ticket.created_at.astimezone(zone).isoformat(),
        "transcript": ticket.text,  # derived: the latest message take's corrected text, else its machine text
        "note": ticket.note,
        "call_satisfaction": ticket.call_satisfaction,  # 1–5 keyed at the end of the call; null: not asked or not keyed
        "recordings": [recording_json(r) for r in ticket.recordings],
    }


def _choice(name: str, enum_type: type[Category] | type[TicketStatus]) -> Any:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        return enum_type(value)
    except ValueError:
        abort(400, f"{name} must be one of {', '.join(m.value for m in enum_type)}")


def _int_arg(name: str, default: int, maximum: int) -> int:
    value = request.args.get(name, str(default))
    if not value.isdigit():
        abort(400, f"{name} must be a non-negative integer")
    return min(int(value), maximum)


@blueprint.get("/tickets")
def list_tickets() -> ResponseReturnValue:
    """Tickets, newest first; filters: property (a code), call_sid, status, category, room, urgent; limit,
    offset. A property outside the token's lists nothing; a code no property has is a 400."""
    query = (
        select(Ticket)
        .options(
            selectinload(Ticket.recordings).selectinload(Recording.transcripts),
            selectinload(Ticket.recordings).selectinload(Recording.live_transcript),
            selectinload(Ticket.call),
        )
        .order_by(Ticket.id.desc())
    )
    if call_sid := request.args.get("call_sid"):
        query = query.join(Ticket.call).where(Call.call_sid == call_sid)
    if (status := _choice("status", TicketStatus)) is not None:
        query = query.where(Ticket.status == status)
    if (category := _choice("category", Category)) is not None:
        query = query.where(Ticket.category == category)
    if room := request.args.get("room"):
        query = query.where(Ticket.room == room)
    if (urgent := request.args.get("urgent")) is not None:
        query = query.where(Ticket.urgent.is_(urgent.lower() in ("1", "true", "yes")))
    limit, offset = _int_arg("limit", 50, MAX_PAGE), _int_arg("offset", 0, 10**9)
    with current_database().session() as session:
        scope = ticket_scope(api_principal())
        if code := request.args.get("property", "").strip():
            property_id = property_id_of_code(session, code)
            if property_id is None:
                abort(400, f"property must be a property's code (`ivr property list`); there is no {code[:32]!r}")
            scope = scope.within(frozenset({property_id}))
        tickets = session.scalars(scope.where(query).limit(limit).offset(offset)).all()
        record_read(
            session,
            api_reader(session),
            LIST_TICKETS,
            ids=[t.id for t in tickets],
            query={key: value[:100] for key, value in list(request.args.items())[:20]},
        )
        return jsonify(tickets=[ticket_json(session, t) for t in tickets], limit=limit, offset=offset)


@blueprint.get("/tickets/<int:ticket_id>")
def show_ticket(ticket_id: int) -> ResponseReturnValue:
    with current_database().session() as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            abort(404, f"no ticket {ticket_id}")
        enforce(ticket_access(api_principal(), ticket), hidden=f"no ticket {ticket_id}")
        record_read(session, api_reader(session), READ_TICKET, ticket_id=ticket.id)
        return jsonify(ticket_json(session, ticket))


@blueprint.get("/recordings/<sid>/audio")
def recording_audio(sid: str) -> ResponseReturnValue:
    """The stored bytes, exactly as Twilio sent them; supports HTTP range requests for seeking. Each listen
    is audited (the range requests of one listen once: ivr.audit)."""
    with current_database().session() as session:
        recording = session.scalars(select(Recording).where(Recording.recording_sid == sid)).first()
        if recording is None:
            abort(404, "no such recording")
        enforce(
            recording_access(api_principal(), recording, evaluation_of_call(session, recording.call_id)),
            hidden="no such recording",
        )
        response = stored_recording_response(recording)
        if request.method == "GET":  # a HEAD sends no audio
            record_listen(session, api_reader(session), recording, request.headers.get("Range"))
        return response
