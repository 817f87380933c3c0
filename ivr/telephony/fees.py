"""Fee inquiry (物业费查询): what the ledger says the room owes, then message / person / menu."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from ivr.fees.ledger import format_amount_cn, format_date_cn, room_balance
from ivr.telephony.prompts import prompt
from ivr.telephony.steps import (
    ask_menu,
    ask_message,
    connect_person,
    gather,
    retry_or_give_up,
    room_spoken,
)
from ivr.telephony.twiml import say, say_prompt
from ivr.telephony.webhook import Turn


def balance_sentence(turn: Turn) -> str:
    """What the ledger says about the caller's room, as one spoken paragraph."""
    spoken = room_spoken(turn) or ""
    balance = room_balance(turn.session, turn.call.room or "", turn.call.property_id)
    if balance is None:
        return prompt("fee_unknown_room", room_spoken=spoken)
    if not balance.lines:
        return prompt("fee_nothing_owed", room_spoken=spoken)
    parts = [prompt("fee_owed_intro", room_spoken=spoken)]
    parts += [
        prompt(
            "fee_owed_line",
            fee_type=line.fee_type,
            period=line.period,
            amount=format_amount_cn(line.amount_due),
            due_date=format_date_cn(line.due_date),
        )
        for line in balance.lines
    ]
    parts.append(prompt("fee_owed_total", total=format_amount_cn(balance.total)))
    return "".join(parts)


def tell_balance(turn: Turn, response: VoiceResponse) -> None:
    say(response, balance_sentence(turn))
    say_prompt(gather(response, "fees/next"), "fee_options")


def after_balance(turn: Turn) -> VoiceResponse:
    """1 = leave a message about fees, 0 = a person, 9 = back to the main menu."""
    response = VoiceResponse()
    if turn.digits == "1":
        ask_message(turn, response)
    elif turn.digits == "0":
        connect_person(turn, response)
    elif turn.digits == "9":
        turn.call.category = None
        ask_menu(response)
    else:
        retry_or_give_up(
            turn,
            response,
            "fee_options",
            ask_again=lambda: say_prompt(gather(response, "fees/next"), "fee_options"),
            give_up=lambda: connect_person(turn, response),
        )
    return response
