"""Twilio's callbacks (call status, recording status) and the fallback URL's safety net."""

from __future__ import annotations

from datetime import UTC, datetime

from twilio.twiml.voice_response import VoiceResponse

from ivr.db import utcnow
from ivr.models import Category, Recording, RecordingSource, RecordingState
from ivr.recordings.download import download_recording
from ivr.telephony.message import keep_posted_take
from ivr.telephony.steps import goodbye, record_message
from ivr.telephony.twiml import say_prompt
from ivr.telephony.webhook import Turn
from ivr.tickets.operations import ABANDONED_NOTE, ensure_ticket, register_recording

FINAL_CALL_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}
# Choices after which a caller who hangs up has left something staff should act on (call back).
CALL_BACK_CATEGORIES = {Category.REPAIR, Category.COMPLAINT, Category.EMERGENCY}


def note_call_status(turn: Turn) -> tuple[str, bool]:
    """A status callback's CallStatus noted on the call, with its end and duration the first time it is final.
    Returns the status and whether the call ended with this callback (a retried one says False)."""
    status = turn.form.get("CallStatus", "")[:32]
    call = turn.call
    if status:
        call.status = status
    if status not in FINAL_CALL_STATUSES or call.ended_at is not None:
        return status, False
    call.ended_at = utcnow()
    duration = turn.form.get("CallDuration", "")
    call.duration = int(duration) if duration.isdigit() else None
    return status, True


def call_status_changed(turn: Turn) -> VoiceResponse:
    """The number's status callback: note how the call ended; a caller who chose a matter is not lost."""
    call = turn.call
    ended = note_call_status(turn)[1]
    if ended and call.ticket is None and not call.recordings and call.category in CALL_BACK_CATEGORIES:
        ensure_ticket(
            turn.session,
            call,
            turn.settings.timezone,
            note=ABANDONED_NOTE,
            urgent=call.category == Category.EMERGENCY,
        )
    return VoiceResponse()


def recording_status_changed(turn: Turn) -> VoiceResponse:
    """A recording is complete (or absent/failed): keep it on the call and fetch the audio."""
    sid = turn.form.get("RecordingSid", "").strip()[:64]
    if not sid:
        return VoiceResponse()
    status = turn.form.get("RecordingStatus", "")[:32] or None
    channels = turn.form.get("RecordingChannels", "")
    recording: Recording | None
    if turn.form.get("RecordingSource") == "DialVerb" or status == "absent":
        # A transfer's recording belongs to the call; an absent take holds nothing to put on a ticket.
        dialled = turn.form.get("RecordingSource") == "DialVerb"
        recording = register_recording(
            turn.session,
            turn.call,
            sid,
            source=RecordingSource.DIAL if dialled else RecordingSource.MESSAGE,
            source_url=turn.form.get("RecordingUrl") or None,
            twilio_status=status,
        )
    else:
        recording = keep_posted_take(turn, twilio_status=status)
        assert recording is not None  # the form has a RecordingSid
    if channels.isdigit():
        recording.channels = int(channels)
    if started := _recording_start(turn.form.get("RecordingStartTime", "")):
        recording.created_at = started
    if status == "completed" and recording.state in (RecordingState.PENDING, RecordingState.DOWNLOADING):
        download_recording.schedule(turn.session, recording.id)
    return VoiceResponse()


def _recording_start(value: str) -> datetime | None:
    try:
        from email.utils import parsedate_to_datetime

        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fallback(turn: Turn) -> VoiceResponse:
    """Twilio's fallback URL (our Voice URL failed): take a message so nothing is lost."""
    if turn.form.get("RecordingSid"):
        keep_posted_take(turn)
        response = VoiceResponse()
        goodbye(response)
        return response
    return trouble_response(turn.form)


def trouble_response(form: dict[str, str]) -> VoiceResponse:
    """What the caller hears when a step fails: an apology and a message recorded anyway (E7); after a
    message (the form has its RecordingSid) only the goodbye."""
    response = VoiceResponse()
    if form.get("RecordingSid"):
        goodbye(response)
        return response
    say_prompt(response, "system_trouble")
    record_message(response, "fallback")
    goodbye(response)
    return response
