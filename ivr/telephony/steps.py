"""What the line says and asks at each point of a call, as TwiML. Route modules pick the step."""

from __future__ import annotations

from collections.abc import Callable

from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from ivr.models import Category, Recording, RecordingSource
from ivr.properties import LineProperty, line_property
from ivr.speech.read_back import read_back_text
from ivr.spoken import digits_spoken
from ivr.standard import THREE_RINGS_SECONDS
from ivr.telephony.media import live_transcription_on, media_stream_url
from ivr.telephony.prompts import prompt
from ivr.telephony.twiml import say, say_prompt, webhook_url
from ivr.telephony.webhook import Turn
from ivr.tickets.operations import bump_counter
from ivr.tickets.rooms import Room, parse_room_code

MENU_TIMEOUT = 6
ROOM_TIMEOUT = 10
MAX_MESSAGE_SECONDS = 180
HANG_UP_GRACE_SECONDS = 10  # let the caller hang up first (E6)
MAX_RETRIES = 3
LIVE_COVER_SLACK_SECONDS = 1.0  # RecordingDuration is whole seconds; the stream starts with the beep
TAKE_COUNTER = "message_take"  # the call's takes so far: names the take's live stream


def line_of(turn: Turn) -> LineProperty:
    """The property of the number the caller dialled: its name, duty phones and time zone."""
    return line_property(turn.session, turn.call.property_id, turn.settings)


def gather(response: VoiceResponse, action: str, *, num_digits: int | None = 1, timeout: int = MENU_TIMEOUT) -> Gather:
    """A keypad Gather whose silence also reaches `action` (with empty Digits)."""
    options: dict[str, object] = {
        "input": "dtmf",
        "action": webhook_url(action),
        "method": "POST",
        "timeout": timeout,
        "action_on_empty_result": True,
    }
    if num_digits:
        options["num_digits"] = num_digits
    else:
        options["finish_on_key"] = "#"
    node = response.gather(**options)
    # Should Twilio ever fall through the Gather, treat it as silence rather than hang up.
    response.redirect(webhook_url(action), method="POST")
    return node


def retry_or_give_up(
    turn: Turn,
    response: VoiceResponse,
    counter: str,
    *,
    ask_again: Callable[[], None],
    give_up: Callable[[], None],
    invalid_prompt: str = "invalid_key",
) -> None:
    """E7: silence or a wrong key is apologised for and asked again; after MAX_RETRIES tries, `give_up`
    (never a dead end: the callers give up to a person, a message or what was keyed)."""
    if bump_counter(turn.call, counter) >= MAX_RETRIES:
        give_up()
    else:
        say_prompt(response, "no_input" if turn.digits == "" else invalid_prompt)
        ask_again()


def ask_menu(response: VoiceResponse) -> None:
    say_prompt(gather(response, "menu"), "main_menu")


def ask_room(response: VoiceResponse) -> None:
    say_prompt(gather(response, "room", num_digits=None, timeout=ROOM_TIMEOUT), "ask_room")


def ask_room_confirmation(response: VoiceResponse, room: Room) -> None:
    say_prompt(gather(response, "room/confirm"), "room_read_back", room_spoken=room.spoken)


def ask_message(turn: Turn, response: VoiceResponse) -> None:
    """Record the caller's message; every take is kept. Empty takes fall through to record/empty. With live
    transcription on, Twilio forks the caller's audio to the media WebSocket while they record."""
    say_prompt(response, "ask_message" if turn.call.room else "ask_message_with_room")
    take = bump_counter(turn.call, TAKE_COUNTER)
    if live_transcription_on(turn.settings):
        stream = response.start().stream(
            url=media_stream_url(turn.settings.public_url), name=take_stream_name(take), track="inbound_track"
        )
        stream.parameter(name="callSid", value=turn.call.call_sid)
        stream.parameter(name="take", value=str(take))
    record_message(response, "recorded")
    response.redirect(webhook_url("record/empty"), method="POST")


def current_take_number(turn: Turn) -> int | None:
    """The number of the take the caller was last asked to record (its live stream's name)."""
    return (turn.call.counters or {}).get(TAKE_COUNTER)


def take_stream_name(take: int) -> str:
    return f"take-{take}"


def stop_take_stream(turn: Turn, response: VoiceResponse) -> None:
    """<Stop> the current take's stream (the take has ended), if the line asked for one."""
    take = current_take_number(turn)
    if take is not None and live_transcription_on(turn.settings):
        response.stop().stream(name=take_stream_name(take))


def record_message(
    response: VoiceResponse,
    action: str,
    *,
    status_callback: str = "recording-status",
    max_seconds: int = MAX_MESSAGE_SECONDS,
) -> None:
    """<Record> a message with a beep, # to finish, and the status callback that fetches the audio."""
    response.record(
        action=webhook_url(action),
        method="POST",
        max_length=max_seconds,
        timeout=5,
        finish_on_key="#",
        play_beep=True,
        recording_status_callback=webhook_url(status_callback),
        recording_status_callback_method="POST",
        recording_status_callback_event="completed absent",
    )


def room_spoken(turn: Turn) -> str | None:
    room = parse_room_code(turn.call.room) if turn.call.room else None
    return room.spoken if room else None


def phone_tail(number: str | None) -> str | None:
    digits = "".join(ch for ch in number or "" if ch.isdigit())
    return digits[-4:] if len(digits) >= 4 else None


def read_back(turn: Turn, response: VoiceResponse) -> None:
    """E4: read the details back (room, phone tail, the message) and ask for confirmation."""
    options = gather(response, "confirm")
    spoken_room = room_spoken(turn)
    parts = [prompt("read_back_room", room_spoken=spoken_room) if spoken_room else prompt("read_back_no_room")]
    tail = phone_tail(turn.call.from_number)
    parts.append(
        prompt("read_back_phone", phone_tail_spoken=digits_spoken(tail)) if tail else prompt("read_back_no_phone")
    )
    take = latest_take(turn)
    said = heard_in_take(take, turn.settings.read_back_min_confidence) if take is not None else None
    if said is not None:
        kind, text = said
        key, field = ("read_back_message", "transcript") if kind == "words" else ("read_back_summary", "summary")
        parts.append(prompt(key, **{field: text}))
    elif take is not None:
        parts.append(prompt("read_back_message_pending"))
    say(options, "".join(parts))
    say_prompt(options, "read_back_options")


def latest_take(turn: Turn) -> Recording | None:
    """The caller's most recent message recording on this call."""
    takes = [r for r in turn.call.recordings if r.source == RecordingSource.MESSAGE]
    return takes[-1] if takes else None


def heard_in_take(take: Recording, min_confidence: float) -> tuple[str, str] | None:
    """What to read back of a take: from its transcript of the downloaded recording when there is one,
    else from what was heard live; ('words' | 'summary', text) or None (see read_back_text)."""
    if take.transcripts:
        heard = take.transcripts[0]
        return read_back_text(heard.text, heard.words, min_confidence)
    live = take.live_transcript
    if live is None or not live_text_covers(take):
        return None  # a stream that dropped mid-take heard only part of it: not read as the message
    return read_back_text(live.text, live.words, min_confidence)


def live_text_covers(take: Recording) -> bool:
    """Whether the take's live text heard all of it (its stream ran from the beep to #)."""
    live = take.live_transcript
    return live is not None and (live.duration or 0) + LIVE_COVER_SLACK_SECONDS >= (take.duration or 0)


def ticket_number_spoken(number: str) -> str:
    """Date part and sequence read apart, digit by digit: '261127003' → '二六一一二七,零零三'."""
    return f"{digits_spoken(number[:6])},{digits_spoken(number[6:])}"


def what_happens_next(category: Category) -> str:
    """What the caller is told happens with their matter, after the ticket number."""
    return prompt(f"what_happens_next_{category.value}")


def after_ticket_number(turn: Turn, response: VoiceResponse, told: str) -> None:
    """After the ticket number (`told`, said in full first): the satisfaction question when the call's property
    asks, else the goodbye, as a property that does not ask has always ended the call."""
    if line_of(turn).ask_satisfaction:
        say(response, told)
        ask_call_satisfaction(response)
    else:
        goodbye(response, told)


def ask_call_satisfaction(response: VoiceResponse) -> None:
    """The satisfaction question, 1–5 by keypad (ivr.telephony.satisfaction); silence reaches it too."""
    say_prompt(gather(response, "satisfaction"), "ask_call_satisfaction")


def goodbye(response: VoiceResponse, lead: str | None = None) -> None:
    """Thank, say 再见, then wait so the caller hangs up first (E6)."""
    if lead:
        say(response, lead)
    say_prompt(response, "goodbye")
    response.pause(length=HANG_UP_GRACE_SECONDS)
    response.hangup()


def connect_person(turn: Turn, response: VoiceResponse, *, emergency: bool = False) -> None:
    """Ring the on-duty numbers for about three rings; the dial action takes a message if nobody answers."""
    say_prompt(response, "emergency_numbers" if emergency else "connecting_person")
    numbers = line_of(turn).duty_numbers
    if not numbers:
        say_prompt(response, "nobody_available")
        ask_message(turn, response)
        return
    dial = Dial(
        action=webhook_url("dial-result"),
        method="POST",
        timeout=THREE_RINGS_SECONDS,  # E1, then a message
        record="record-from-answer-dual",
        recording_status_callback=webhook_url("recording-status"),
        recording_status_callback_method="POST",
        recording_status_callback_event="completed absent",
        caller_id=turn.call.to_number or None,
    )
    for number in numbers:
        dial.number(
            number,
            status_callback=webhook_url("dial-status"),
            status_callback_method="POST",
            status_callback_event="initiated ringing answered completed",
        )
    response.append(dial)
