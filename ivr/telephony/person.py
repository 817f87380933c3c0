"""A person: ring the on-duty numbers (E1: about three rings); nobody answers → take a message."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from ivr.models import RecordingSource
from ivr.telephony.steps import ask_message, goodbye
from ivr.telephony.twiml import say_prompt
from ivr.telephony.webhook import Turn
from ivr.tickets.operations import register_recording

ANSWERED = "completed"


def keep_dial_recording(turn: Turn) -> None:
    """A Dial action names the dual-channel recording of the talk, when there was one: keep it on the call."""
    sid = turn.form.get("RecordingSid", "").strip()
    if sid:
        register_recording(
            turn.session,
            turn.call,
            sid[:64],
            source=RecordingSource.DIAL,
            source_url=turn.form.get("RecordingUrl") or None,
        )


def dial_finished(turn: Turn) -> VoiceResponse:
    """The Dial action: the transfer ended (talked) or failed (no answer, busy, failed, canceled)."""
    response = VoiceResponse()
    keep_dial_recording(turn)
    if turn.form.get("DialCallStatus") == ANSWERED:
        goodbye(response)
        return response
    say_prompt(response, "nobody_available")
    ask_message(turn, response)
    return response


def dial_progress(turn: Turn) -> VoiceResponse:
    """A <Number> status event (initiated, ringing, answered, completed): kept on the timeline only."""
    return VoiceResponse()
