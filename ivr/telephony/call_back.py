"""The staff call-back (回拨) as webhook steps: the line rang the staff member's phone (ivr.followup.call_back);
when they answer they hear which ticket it is, and the resident is dialled with the property's number as caller
ID, both sides recorded on separate channels (the staff member's leg first) for QA review. Everything said here
is said to the staff member; the resident hears the staff member only."""

from __future__ import annotations

from flask import request
from twilio.twiml.voice_response import Dial, VoiceResponse

from ivr.followup.call_back import (
    DIAL_OUTCOMES,
    STAFF_OUTCOMES,
    call_back_of,
    call_back_of_call,
    end_call_back,
)
from ivr.followup.calls import caller_id
from ivr.models import CallBack, CallBackState
from ivr.properties import line_property
from ivr.telephony.callbacks import FINAL_CALL_STATUSES, note_call_status
from ivr.telephony.person import ANSWERED, keep_dial_recording
from ivr.telephony.steps import gather, ticket_number_spoken
from ivr.telephony.twiml import say_prompt, webhook_url
from ivr.telephony.webhook import Turn

RESIDENT_RING_SECONDS = 30  # the resident is at home, not at a desk: give them time to reach the phone
CONFIRM_SECONDS = 8
CONNECT_KEY = "1"


def trouble_response(form: dict[str, str]) -> VoiceResponse:
    """A step failed (the database is down, a bug): the staff member is told to try again from the console."""
    response = VoiceResponse()
    say_prompt(response, "call_back_trouble")
    response.hangup()
    return response


def _over(response: VoiceResponse) -> VoiceResponse:
    say_prompt(response, "call_back_over")
    response.hangup()
    return response


def staff_answered(turn: Turn) -> VoiceResponse:
    """The staff member's phone answered: say which ticket and wait for 1 before dialling the resident — a
    voicemail that picks up the staff member's phone must not be put through to a resident."""
    response = VoiceResponse()
    call_back = call_back_of_call(turn.session, turn.call.call_sid, request.args.get("call_back", ""))
    if call_back is None or call_back.state != CallBackState.CALLING_STAFF:
        return _over(response)  # a retried or late answer of a call-back that is over
    call_back.call_id = turn.call.id
    turn.call.property_id = call_back.property_id  # the call rang a staff phone, not one of the property's numbers
    ticket = call_back.ticket
    say_prompt(
        gather(response, "call-back/connect", timeout=CONFIRM_SECONDS),
        "call_back_press_one",
        ticket_number_spoken=ticket_number_spoken(ticket.number),
        room=ticket.room or "来电",
    )
    return response


def staff_confirmed(turn: Turn) -> VoiceResponse:
    """1: dial the resident, recording both sides; anything else (silence: a voicemail) cancels the call-back."""
    response = VoiceResponse()
    call_back = call_back_of(turn.session, turn.call.id)
    if call_back is None or call_back.state != CallBackState.CALLING_STAFF:
        return _over(response)
    if turn.digits != CONNECT_KEY:
        end_call_back(turn.session, call_back, CallBackState.FAILED, "您未按1确认,回拨已取消")
        say_prompt(response, "call_back_cancelled")
        response.hangup()
        return response
    line = line_property(turn.session, call_back.property_id, turn.settings)
    from_ = caller_id(line, turn.settings)
    if from_ is None:  # the property's number was removed since the request
        end_call_back(turn.session, call_back, CallBackState.FAILED, "物业没有外呼号码,回拨未拨出")
        return _over(response)
    call_back.state = CallBackState.CALLING_RESIDENT
    say_prompt(response, "call_back_connecting")
    dial = Dial(
        action=webhook_url("call-back/dial-result"),
        method="POST",
        timeout=RESIDENT_RING_SECONDS,
        record="record-from-answer-dual",
        recording_status_callback=webhook_url("recording-status"),
        recording_status_callback_method="POST",
        recording_status_callback_event="completed absent",
        caller_id=from_,
    )
    dial.number(
        call_back.resident_phone,
        status_callback=webhook_url("dial-status"),
        status_callback_method="POST",
        status_callback_event="initiated ringing answered completed",
    )
    response.append(dial)
    return response


def resident_dial_finished(turn: Turn) -> VoiceResponse:
    """The Dial action: they talked (the resident hung up, or the staff member did), or the resident's phone was
    not answered. The staff member, if still on the line, hears how it ended."""
    response = VoiceResponse()
    keep_dial_recording(turn)
    call_back = call_back_of(turn.session, turn.call.id)
    status = turn.form.get("DialCallStatus", "")
    if status == ANSWERED:
        seconds = turn.form.get("DialCallDuration", "")
        talked = f"已通话{seconds}秒" if seconds.isdigit() else "已通话"
        if call_back is not None:
            end_call_back(turn.session, call_back, CallBackState.DONE, talked)
        if turn.form.get("CallStatus") != "completed":  # the resident hung up first; the staff member is on
            say_prompt(response, "call_back_resident_gone")
        response.hangup()
        return response
    outcome = DIAL_OUTCOMES.get(status, "住户电话未接通")
    if call_back is not None:
        end_call_back(turn.session, call_back, CallBackState.FAILED, outcome)
    say_prompt(response, "call_back_not_connected", outcome=outcome)
    response.hangup()
    return response


def staff_call_status(turn: Turn) -> VoiceResponse:
    """The staff member's leg's status callback: a phone not answered (or hung up before the resident was
    dialled or answered) ends the call-back as not connected."""
    status, _ = note_call_status(turn)
    if status not in FINAL_CALL_STATUSES:
        return VoiceResponse()
    call_back: CallBack | None = call_back_of_call(turn.session, turn.call.call_sid, request.args.get("call_back", ""))
    if call_back is None:
        return VoiceResponse()
    if call_back.state == CallBackState.CALLING_STAFF:
        outcome = STAFF_OUTCOMES.get(status, "您接听后未接通住户即挂断")
        end_call_back(turn.session, call_back, CallBackState.FAILED, outcome)
    elif call_back.state == CallBackState.CALLING_RESIDENT:
        end_call_back(turn.session, call_back, CallBackState.FAILED, DIAL_OUTCOMES["canceled"])
    return VoiceResponse()
