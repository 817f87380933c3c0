"""The message: <Record>, the read-back (E4) and confirmation with a ticket number."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from ivr.models import Category, Recording
from ivr.telephony.prompts import prompt
from ivr.telephony.steps import (
    MAX_RETRIES,
    ask_message,
    connect_person,
    goodbye,
    next_steps,
    read_back,
    ticket_number_spoken,
)
from ivr.telephony.twiml import say_prompt
from ivr.telephony.webhook import Turn
from ivr.tickets.operations import ABANDONED_NOTE, bump_counter, confirm_ticket, ensure_ticket, register_recording


def _duration(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def keep_take(turn: Turn, *, twilio_status: str | None = None) -> Recording | None:
    """Put the recording Twilio just made on the call's ticket (opening the ticket if needed)."""
    sid = turn.form.get("RecordingSid", "").strip()
    ticket = ensure_ticket(turn.session, turn.call, turn.settings.timezone,
                           urgent=turn.call.category == Category.EMERGENCY)
    if ticket.note == ABANDONED_NOTE:  # the take arrived after the hang-up was noted
        ticket.note = None
    if sid:
        recording = register_recording(
            turn.session, turn.call, sid[:64],
            source_url=turn.form.get("RecordingUrl") or None,
            duration=_duration(turn.form.get("RecordingDuration")),
            twilio_status=twilio_status,
        )
        recording.ticket = ticket
        return recording
    return None


def message_recorded(turn: Turn) -> VoiceResponse:
    """The Record action: keep the take, then read back (unless the caller already hung up)."""
    keep_take(turn)
    response = VoiceResponse()
    if turn.form.get("Digits") == "hangup":
        return response  # Twilio ignores this answer; the take is already kept
    say_prompt(response, "message_kept")
    read_back(turn, response)
    return response


def message_empty(turn: Turn) -> VoiceResponse:
    """Record heard nothing: apologise and ask again; after a few tries, a person or a call-back."""
    response = VoiceResponse()
    if bump_counter(turn.call, "message_empty") < MAX_RETRIES:
        say_prompt(response, "message_empty")
        ask_message(turn, response)
    elif turn.settings.duty_numbers:
        connect_person(turn, response)
    else:
        ensure_ticket(turn.session, turn.call, turn.settings.timezone, note="来电未留言,请回电联系")
        goodbye(response, prompt("no_message_kept"))
    return response


def confirm_message(turn: Turn) -> VoiceResponse:
    """1 = the read-back is right (ticket number, next steps, goodbye), 2 = record again, 0 = a person."""
    response = VoiceResponse()
    ticket = turn.call.ticket
    if ticket is None:  # a stray request before any message: take one
        ask_message(turn, response)
    elif turn.digits == "1":
        confirm_ticket(turn.session, ticket)
        goodbye(response, prompt("confirmed", ticket_number_spoken=ticket_number_spoken(ticket.number),
                                 next_steps=next_steps(ticket.category)))
    elif turn.digits == "2":
        ask_message(turn, response)
    elif turn.digits == "0":
        connect_person(turn, response)
    elif bump_counter(turn.call, "confirm") >= MAX_RETRIES:
        goodbye(response, prompt("saved_unconfirmed", ticket_number_spoken=ticket_number_spoken(ticket.number)))
    else:
        say_prompt(response, "no_input" if turn.digits == "" else "invalid_key")
        read_back(turn, response)
    return response
