"""The satisfaction question at the end of an inbound call, for a property that asks: after the ticket number,
1–5 by keypad onto the ticket, then thanks, 再见 and the pause for the caller to hang up first (E6). A wrong key
is apologised for and asked once more (E7); silence or a second miss is thanked and let go with 再见: the
question is optional, so it never nags, and never ends in a silent hang-up."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from ivr.telephony.prompts import prompt
from ivr.telephony.steps import ask_call_satisfaction, goodbye
from ivr.telephony.twiml import say_prompt
from ivr.telephony.webhook import Turn
from ivr.tickets.call_satisfaction import SCORES, record_call_satisfaction
from ivr.tickets.operations import bump_counter

SATISFACTION_KEYS = {str(score) for score in SCORES}
MISSED_COUNTER = "call_satisfaction_missed"
MAX_TRIES = 2  # the question, and once more after a wrong key


def rate_the_call(turn: Turn) -> VoiceResponse:
    """The caller's key (or silence) at the satisfaction question."""
    response = VoiceResponse()
    ticket = turn.call.ticket
    key = turn.digits
    if ticket is None:  # a stray request: there is no ticket to score
        goodbye(response)
    elif key in SATISFACTION_KEYS:
        record_call_satisfaction(turn.session, ticket, int(key))
        goodbye(response, prompt("call_satisfaction_thanks"))
    elif key and bump_counter(turn.call, MISSED_COUNTER) < MAX_TRIES:
        say_prompt(response, "invalid_key")
        ask_call_satisfaction(response)
    else:
        goodbye(response)
    return response


def trouble_response(form: dict[str, str]) -> VoiceResponse:
    """What the caller hears when this step fails (the request waits in the spool, and its score is kept when
    it is replayed): thanks and 再见, not the "leave your room and problem" of the rest of the line — they have
    their ticket number already."""
    response = VoiceResponse()
    scored = form.get("Digits", "").strip() in SATISFACTION_KEYS
    goodbye(response, prompt("call_satisfaction_thanks") if scored else None)
    return response
