"""A caller the registry knows: before any room entry, the line offers the rooms of the dialled property their
number is registered for (「您是3栋2单元501室的住户吗?」); yes settles the room, no keys it as usual."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from ivr.residents.registry import caller_rooms, set_room_from_registry
from ivr.telephony.prompts import prompt
from ivr.telephony.room import after_room
from ivr.telephony.steps import ask_room, gather, retry_or_give_up
from ivr.telephony.twiml import say
from ivr.telephony.webhook import Turn
from ivr.tickets.rooms import Room, parse_room_code

MAX_OFFERED = 5  # a longer spoken list is not remembered; the other rooms can still be keyed
NONE_OF_THESE_KEY = "9"
OFFER_COUNTER = "registered_room"


def offer_registered_room(turn: Turn, response: VoiceResponse) -> bool:
    """Before the room is keyed: offer the caller's registered rooms; False when there are none (the caller
    then keys the room)."""
    offered = offered_rooms(turn)
    if offered:
        ask_which_room(response, offered)
    return bool(offered)


def offered_rooms(turn: Turn) -> list[Room]:
    """The registered rooms the line offers the caller (the first MAX_OFFERED, in counting order)."""
    rooms = (parse_room_code(code) for code in caller_rooms(turn.session, turn.call))
    return [room for room in rooms if room is not None][:MAX_OFFERED]


def ask_which_room(response: VoiceResponse, offered: list[Room]) -> None:
    """One room: is it yours (1 yes, 2 no)? Several: which one (1…n, 9 none of them)?"""
    options = gather(response, "room/registered")
    if len(offered) == 1:
        say(options, prompt("resident_one_room", room_spoken=offered[0].spoken))
    else:
        choices = "".join(
            prompt("resident_room_choice", room_spoken=room.spoken, digit=digit)
            for digit, room in enumerate(offered, 1)
        )
        say(options, prompt("resident_rooms", choices=choices))


def chosen_room(offered: list[Room], key: str) -> Room | None:
    """The offered room the key picks: 1 for the one room, or 1…n of several."""
    if key.isdigit() and 1 <= int(key) <= len(offered) and (len(offered) > 1 or key == "1"):
        return offered[int(key) - 1]
    return None


def choose_registered_room(turn: Turn) -> VoiceResponse:
    """The caller answered the offer of their registered rooms (or said nothing)."""
    response = VoiceResponse()
    offered = offered_rooms(turn)
    declined_key = "2" if len(offered) == 1 else NONE_OF_THESE_KEY
    room = chosen_room(offered, turn.digits)
    if room is not None:
        turn.call.room = room.code
        turn.call.room_confirmed = True  # the caller said it is theirs
        set_room_from_registry(turn.call, True)
        after_room(turn, response)
    elif not offered or turn.digits == declined_key:  # not offered: a stray or replayed request
        key_the_room(turn, response)
    else:
        retry_or_give_up(
            turn,
            response,
            OFFER_COUNTER,
            ask_again=lambda: ask_which_room(response, offered),
            give_up=lambda: key_the_room(turn, response),
        )
    return response


def key_the_room(turn: Turn, response: VoiceResponse) -> None:
    """None of the registered rooms (or no answer after the retries): the usual keypad entry."""
    turn.call.room = None
    turn.call.room_confirmed = False
    set_room_from_registry(turn.call, False)
    ask_room(response)
