"""The message: <Record>, the read-back (E4) and confirmation with a ticket number (then, for a property that
asks, the satisfaction question: ivr.telephony.satisfaction)."""

from __future__ import annotations

from flask import g, request
from twilio.twiml.voice_response import VoiceResponse

from ivr.models import LiveTranscript, Recording, RecordingState
from ivr.recordings.download import download_recording
from ivr.speech.status import speech_model_installed, speech_model_path
from ivr.telephony.media import live_pool
from ivr.telephony.prompts import prompt
from ivr.telephony.steps import (
    MAX_RETRIES,
    after_ticket_number,
    ask_message,
    connect_person,
    current_take_number,
    goodbye,
    latest_take,
    line_of,
    live_text_covers,
    read_back,
    retry_or_give_up,
    stop_take_stream,
    ticket_number_spoken,
    what_happens_next,
)
from ivr.telephony.twiml import say_prompt, webhook_url
from ivr.telephony.webhook import Turn
from ivr.tickets.operations import bump_counter, confirm_ticket, ensure_ticket, keep_take, reset_counter

POLL_SECONDS = 1
MAX_POLLS = 6  # with the hold phrase, a caller waits at most about eight seconds for the read-back


def _duration(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def keep_posted_take(turn: Turn, *, twilio_status: str | None = None) -> Recording | None:
    """Keep the take Twilio posted (RecordingSid, RecordingUrl, RecordingDuration) on the call's ticket."""
    return keep_take(
        turn.session,
        turn.call,
        turn.settings.timezone,
        turn.form.get("RecordingSid", "").strip()[:64] or None,
        source_url=turn.form.get("RecordingUrl") or None,
        duration=_duration(turn.form.get("RecordingDuration")),
        twilio_status=twilio_status,
    )


def message_recorded(turn: Turn) -> VoiceResponse:
    """The Record action: keep the take and start fetching it; read back at once when the live text
    covers the take, else (when a speech model is installed) after the transcript — unless the caller
    already hung up."""
    take = keep_posted_take(turn)
    if take is not None and take.source_url and take.state == RecordingState.PENDING:
        # Fetch now rather than on the status callback: the caller is waiting for the read-back.
        download_recording.schedule(turn.session, take.id)
    response = VoiceResponse()
    stop_take_stream(turn, response)
    heard_live = take is not None and keep_live_text(turn, take)
    if turn.form.get("Digits") == "hangup":
        return response  # Twilio ignores this answer; the take is already kept
    if heard_live:
        read_back(turn, response)  # no hold phrase, no polling: the caller hears it now
        return response
    if take is not None and speech_model_installed(turn.settings):
        reset_counter(turn.call, "read_back_wait")
        say_prompt(response, "hold_while_transcribing")
        # While the hold phrase plays the job is already running; check right after it.
        response.redirect(read_back_url(take), method="POST")
        return response
    say_prompt(response, "message_kept")
    read_back(turn, response)
    return response


def finish_live_take() -> None:
    """before_request of the Record action (signature already checked): the caller pressed #, so their
    live take is finished now — before the webhook's transaction, so that waiting for its last chunk never
    holds the database — and what it heard waits in `g` for the step."""
    if request.endpoint == "telephony.recorded":
        live = live_pool().latest(request.form.get("CallSid", ""))
        if live is not None:
            g.live_take = (live.key[1], live.finish())


def keep_live_text(turn: Turn, take: Recording) -> bool:
    """Keep the text the take's live transcription heard (if its stream ran in this process) on the take;
    True when it covers the whole take, so the read-back needs no wait."""
    number, heard = g.pop("live_take", (None, None))
    if heard is None or number != current_take_number(turn):
        return False
    if take.live_transcript is None:
        take.live_transcript = LiveTranscript(
            text=heard.text,
            raw_text=heard.raw_text,
            words=heard.as_dict()["words"],
            duration=round(heard.duration, 3),
            mean_confidence=heard.mean_confidence,
            model=speech_model_path(turn.settings).name,
        )
    return live_text_covers(take)


def read_back_url(take: Recording) -> str:
    return webhook_url("read-back", take=take.recording_sid)


def wait_for_transcript(response: VoiceResponse, take: Recording) -> None:
    response.pause(length=POLL_SECONDS)
    response.redirect(read_back_url(take), method="POST")


def _transcription_settled(take: Recording) -> bool:
    """The take has its transcript, or will not get one automatically."""
    return bool(take.transcripts) or take.needs_manual_transcription or take.state == RecordingState.FAILED


def read_back_when_ready(turn: Turn) -> VoiceResponse:
    """Poll: read back once the take is transcribed, or after a few seconds without it (never keep waiting)."""
    response = VoiceResponse()
    take = latest_take(turn)
    if take is None or _transcription_settled(take) or bump_counter(turn.call, "read_back_wait") > MAX_POLLS:
        read_back(turn, response)
    else:
        wait_for_transcript(response, take)
    return response


def message_empty(turn: Turn) -> VoiceResponse:
    """Record heard nothing: apologise and ask again; after a few tries, a person or a call-back."""
    response = VoiceResponse()
    stop_take_stream(turn, response)
    number = current_take_number(turn)
    if number is not None and (live := live_pool().find((turn.call.call_sid, number))) is not None:
        live.discard()
    if bump_counter(turn.call, "message_empty") < MAX_RETRIES:
        say_prompt(response, "message_empty")
        ask_message(turn, response)
    elif line_of(turn).duty_numbers:
        connect_person(turn, response)
    else:
        ensure_ticket(turn.session, turn.call, turn.settings.timezone, note="来电未留言,请回电联系")
        goodbye(response, prompt("no_message_kept"))
    return response


def confirm_message(turn: Turn) -> VoiceResponse:
    """1 = the read-back is right (ticket number, next steps, the satisfaction question when the property asks,
    goodbye), 2 = record again, 0 = a person."""
    response = VoiceResponse()
    ticket = turn.call.ticket
    if ticket is None:  # a stray request before any message: take one
        ask_message(turn, response)
    elif turn.digits == "1":
        confirm_ticket(turn.session, ticket)
        after_ticket_number(
            turn,
            response,
            prompt(
                "confirmed",
                ticket_number_spoken=ticket_number_spoken(ticket.number),
                what_happens_next=what_happens_next(ticket.category),
            ),
        )
    elif turn.digits == "2":
        ask_message(turn, response)
    elif turn.digits == "0":
        connect_person(turn, response)
    else:
        spoken = ticket_number_spoken(ticket.number)
        # Kept unconfirmed, and no satisfaction question even where the property asks: the caller has just
        # missed the keypad three times, and one more keypad question would nag them.
        retry_or_give_up(
            turn,
            response,
            "confirm",
            ask_again=lambda: read_back(turn, response),
            give_up=lambda: goodbye(response, prompt("saved_unconfirmed", ticket_number_spoken=spoken)),
        )
    return response
