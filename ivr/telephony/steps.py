"""What the line says and asks at each point of a call, as TwiML. Route modules pick the step."""

from __future__ import annotations

from collections.abc import Callable

from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from ivr.models import Category, Recording, RecordingSource
from ivr.spoken import digits_spoken
from ivr.standard import THREE_RINGS_SECONDS
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
READ_BACK_CHARS = 80


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
    """Record the caller's message; every take is kept. Empty takes fall through to record/empty."""
    say_prompt(response, "ask_message" if turn.call.room else "ask_message_with_room")
    record_message(response, "recorded")
    response.redirect(webhook_url("record/empty"), method="POST")


def record_message(response: VoiceResponse, action: str) -> None:
    """<Record> a message with a beep, # to finish, and the status callback that fetches the audio."""
    response.record(
        action=webhook_url(action),
        method="POST",
        max_length=MAX_MESSAGE_SECONDS,
        timeout=5,
        finish_on_key="#",
        play_beep=True,
        recording_status_callback=webhook_url("recording-status"),
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
    said = take.transcripts[0].text if take is not None and take.transcripts else ""
    if said:
        parts.append(prompt("read_back_message", transcript=shortened(said)))
    elif take is not None:
        parts.append(prompt("read_back_message_pending"))
    say(options, "".join(parts))
    say_prompt(options, "read_back_options")


def latest_take(turn: Turn) -> Recording | None:
    """The caller's most recent message recording on this call."""
    takes = [r for r in turn.call.recordings if r.source == RecordingSource.MESSAGE]
    return takes[-1] if takes else None


def shortened(text: str, limit: int = READ_BACK_CHARS) -> str:
    """Long messages are read back in part, so the caller is not kept listening."""
    return text if len(text) <= limit else text[:limit] + "……"


def ticket_number_spoken(number: str) -> str:
    """Date part and sequence read apart, digit by digit: '261127003' → '二六一一二七,零零三'."""
    return f"{digits_spoken(number[:6])},{digits_spoken(number[6:])}"


def what_happens_next(category: Category) -> str:
    """What the caller is told happens with their matter, after the ticket number."""
    return prompt(f"what_happens_next_{category.value}")


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
    numbers = turn.settings.duty_numbers
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
