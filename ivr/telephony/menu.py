"""The greeting (E2) and the main menu: repair, complaint, fee, a person, emergency."""

from __future__ import annotations

from functools import lru_cache

from twilio.twiml.voice_response import VoiceResponse

from ivr.models import Category
from ivr.properties import LineProperty
from ivr.telephony.resident import offer_registered_room
from ivr.telephony.steps import ask_menu, ask_room, connect_person, line_of, retry_or_give_up
from ivr.telephony.twiml import RenderedResponse, say_prompt
from ivr.telephony.webhook import Turn
from ivr.tickets.operations import ensure_ticket

MENU_CATEGORIES = {"1": Category.REPAIR, "2": Category.COMPLAINT, "3": Category.FEE}
PERSON_KEY = "0"
EMERGENCY_KEY = "9"
EMERGENCY_REASON = "来电选择了紧急情况(按9)"


def answer_call(turn: Turn) -> VoiceResponse:
    """The number's Voice URL: greet at once (E1, E2) with the dialled property's name, and offer the menu."""
    return greeting(line_of(turn), turn.settings.public_url)


@lru_cache(maxsize=256)
def greeting(line: LineProperty, public_url: str) -> RenderedResponse:
    """The greeting and menu, the same for every call to this property at this address (the menu's URL is
    under `public_url`): built and rendered once (every call starts here; building and rendering it was about
    6 % of /twilio/voice's CPU)."""
    response = VoiceResponse()
    say_prompt(response, "greeting", property_name=line.name)
    ask_menu(response)
    return RenderedResponse.of(response)


def choose_from_menu(turn: Turn) -> VoiceResponse:
    """The caller pressed a key (or nothing) in the main menu."""
    response = VoiceResponse()
    key = turn.digits
    if key in MENU_CATEGORIES:
        turn.call.category = MENU_CATEGORIES[key]
        if not offer_registered_room(turn, response):  # a registered caller's rooms first
            ask_room(response)
    elif key == PERSON_KEY:
        connect_person(turn, response)
    elif key == EMERGENCY_KEY:
        turn.call.category = Category.EMERGENCY
        # An emergency is on record before anyone rings, whatever happens next.
        ensure_ticket(turn.session, turn.call, turn.settings.timezone, urgent=True, reason=EMERGENCY_REASON)
        connect_person(turn, response, emergency=True)
    else:

        def to_a_person() -> None:
            say_prompt(response, "menu_to_person")
            connect_person(turn, response)

        retry_or_give_up(
            turn,
            response,
            "menu_no_input" if key == "" else "menu_invalid",
            ask_again=lambda: ask_menu(response),
            give_up=to_a_person,
        )
    return response
