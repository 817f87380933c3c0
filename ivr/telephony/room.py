"""The room (房号) by keypad as 楼栋*单元*房号#, read back with confirm / re-enter."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from ivr.models import Category
from ivr.telephony.fees import tell_balance
from ivr.telephony.steps import ask_message, ask_room, ask_room_confirmation, retry_or_give_up
from ivr.telephony.twiml import say_prompt
from ivr.telephony.webhook import Turn
from ivr.tickets.rooms import parse_keyed_room, parse_room_code


def after_room(turn: Turn, response: VoiceResponse) -> None:
    """With the room settled (or given up on), go where the menu choice leads."""
    if turn.call.category == Category.FEE and turn.call.room:
        tell_balance(turn, response)
    else:
        ask_message(turn, response)


def enter_room(turn: Turn) -> VoiceResponse:
    """The caller keyed a room (or nothing)."""
    response = VoiceResponse()
    room = parse_keyed_room(turn.digits) if turn.digits not in ("", "?") else None
    if room is not None:
        turn.call.room = room.code
        turn.call.room_confirmed = False
        ask_room_confirmation(response, room)
    else:

        def say_it_in_the_message() -> None:
            say_prompt(response, "room_given_up")
            after_room(turn, response)

        retry_or_give_up(
            turn,
            response,
            "room_invalid",
            ask_again=lambda: ask_room(response),
            give_up=say_it_in_the_message,
            invalid_prompt="room_invalid",
        )
    return response


def confirm_room(turn: Turn) -> VoiceResponse:
    """1 = the room read back is right, 2 = key it again."""
    response = VoiceResponse()
    room = parse_room_code(turn.call.room) if turn.call.room else None
    if room is None:  # a stray or replayed request: start the room again
        ask_room(response)
    elif turn.digits == "1":
        turn.call.room_confirmed = True
        after_room(turn, response)
    elif turn.digits == "2":
        turn.call.room = None
        ask_room(response)
    else:
        # After the retries the room as keyed is better than nothing; staff see it was not confirmed.
        retry_or_give_up(
            turn,
            response,
            "room_confirm",
            ask_again=lambda: ask_room_confirmation(response, room),
            give_up=lambda: after_room(turn, response),
        )
    return response
