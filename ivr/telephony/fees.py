"""Fee inquiry (物业费查询): what the ledger says the room owes, told only to a number registered for the room,
then message / person / menu."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from ivr.audit import FEE_REFUSED, FEE_TOLD, PHONE, Reader
from ivr.fees.ledger import RoomBalance, format_amount_cn, format_date_cn, room_balance
from ivr.residents.registry import caller_registered_for
from ivr.telephony.prompts import all_prompts, prompt
from ivr.telephony.steps import (
    ask_menu,
    ask_message,
    connect_person,
    gather,
    line_of,
    retry_or_give_up,
    room_spoken,
)
from ivr.telephony.twiml import say, say_prompt
from ivr.telephony.webhook import Turn


def balance_sentence(spoken: str, balance: RoomBalance | None) -> str:
    """What the ledger says about the caller's room, as one spoken paragraph."""
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


def private_sentence(turn: Turn, spoken: str) -> str:
    """What a caller whose number is not registered for the room hears: why not, the fee standards (the
    property's own `fee_standards_<code>` prompt, else the general one) and where to ask."""
    standards = all_prompts().get(f"fee_standards_{line_of(turn).code}") or prompt("fee_standards")
    return prompt("fee_private", fee_standards=standards, room_spoken=spoken)


def tell_balance(turn: Turn, response: VoiceResponse) -> None:
    """The room's arrears to a number registered for it, the fee standards and the front desk to anyone else;
    either way audited (who asked, which room of which property), then the fee options."""
    room = turn.call.room or ""
    spoken = room_spoken(turn) or ""
    if caller_registered_for(turn.session, turn.call, room):
        balance = room_balance(turn.session, room, turn.call.property_id)
        say(response, balance_sentence(spoken, balance))
        if balance is not None:
            record_fee_answer(turn, FEE_TOLD, room)
    else:
        say(response, private_sentence(turn, spoken))
        record_fee_answer(turn, FEE_REFUSED, room)
    say_prompt(gather(response, "fees/next"), "fee_options")


def record_fee_answer(turn: Turn, action: str, room: str) -> None:
    """An audit row: the line told (or refused to tell) this caller a room's arrears."""
    caller = Reader(actor=f"caller:{turn.call.from_number or 'unknown'}", via=PHONE)
    detail = {"room": room, "property": line_of(turn).code, "call": turn.call.call_sid}
    turn.session.add(caller.event(action, detail=detail))


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
