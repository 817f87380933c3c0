"""The follow-up call (回访) as webhook steps: the line placed the call (ivr.followup.calls) and Twilio requests
these. Greeting, resolved? (1 yes / 2 no, 9 no more follow-up calls), satisfaction 1–5, an optional spoken
comment, thanks and 再见, and the resident hangs up first (E6). An answering machine hears one polite sentence."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import request
from sqlalchemy import select
from twilio.twiml.voice_response import VoiceResponse

from ivr.db import utcnow
from ivr.followup.calls import FINAL_CALL_STATUSES, attempt_ended, record_opt_out
from ivr.followup.results import attach_comment, record_answers
from ivr.models import FollowUp, FollowUpState, RecordingSource, RecordingState
from ivr.properties import line_property
from ivr.recordings.download import download_recording
from ivr.telephony.callbacks import note_call_status
from ivr.telephony.prompts import prompt
from ivr.telephony.steps import HANG_UP_GRACE_SECONDS, gather, record_message, retry_or_give_up
from ivr.telephony.twiml import say, say_prompt
from ivr.telephony.webhook import Turn
from ivr.tickets.operations import register_recording
from ivr.tickets.procedure import CATEGORY_LABELS
from ivr.tickets.sla import called_at

MAX_COMMENT_SECONDS = 120
SATISFACTION_KEYS = "12345"
OPT_OUT_KEY = "9"


def follow_up_of(turn: Turn) -> FollowUp | None:
    """The follow-up this call is an attempt of: by CallSid, else (the answer may come before the placement
    job noted the CallSid) the `follow_up` and `attempt` of the signed URL, when that attempt is the one
    calling and has no call yet."""
    call = turn.call
    found = turn.session.scalars(select(FollowUp).where(FollowUp.call_sid == call.call_sid)).first()
    wanted, attempt = request.args.get("follow_up", ""), request.args.get("attempt", "")
    if found is None and wanted.isdigit() and attempt.isdigit():
        candidate = turn.session.get(FollowUp, int(wanted))
        if (
            candidate is not None
            and candidate.state == FollowUpState.CALLING
            and candidate.call_sid is None
            and candidate.attempts == int(attempt)
        ):
            candidate.call_sid = call.call_sid
            found = candidate
    if found is not None and call.property_id != found.property_id:
        call.property_id = found.property_id  # the call dialled a resident, not one of the property's numbers
    return found


def goodbye(response: VoiceResponse, lead: str | None = None) -> None:
    """Thank, say 再见, then wait so the resident hangs up first (E6)."""
    if lead:
        say(response, lead)
    say_prompt(response, "follow_up_goodbye")
    response.pause(length=HANG_UP_GRACE_SECONDS)
    response.hangup()


def trouble_response(form: dict[str, str]) -> VoiceResponse:
    """What the resident hears when a step of the follow-up call fails: an apology, we will call again, 再见,
    then the pause for them to hang up first (E6). Not the inbound caller's "leave your room and problem"."""
    response = VoiceResponse()
    say_prompt(response, "follow_up_trouble")
    response.pause(length=HANG_UP_GRACE_SECONDS)
    response.hangup()
    return response


def ask_resolved(response: VoiceResponse) -> None:
    say_prompt(gather(response, "outbound/resolved"), "follow_up_ask_resolved")


def ask_satisfaction(response: VoiceResponse) -> None:
    say_prompt(gather(response, "outbound/satisfaction"), "follow_up_ask_satisfaction")


def ask_comment(response: VoiceResponse) -> None:
    """An optional spoken comment: silence falls through to the goodbye."""
    say_prompt(response, "follow_up_ask_comment")
    record_message(
        response,
        "outbound/comment",
        status_callback="outbound/recording-status",
        max_seconds=MAX_COMMENT_SECONDS,
    )
    goodbye(response, prompt("follow_up_thanks"))


def answer_follow_up(turn: Turn) -> VoiceResponse:
    """The resident (or a machine) answered: greet with the property's name, the day and the matter, and ask."""
    response = VoiceResponse()
    follow_up = follow_up_of(turn)
    line = line_property(turn.session, turn.call.property_id, turn.settings)
    answered_by = turn.form.get("AnsweredBy", "")
    if follow_up is None or follow_up.state != FollowUpState.CALLING:
        say_prompt(response, "follow_up_over", property_name=line.name)
        response.hangup()
        return response
    if answered_by.startswith("machine") or answered_by == "fax":
        follow_up.last_outcome = "machine"  # no questions for a machine: an attempt that reached nobody
        say_prompt(response, "follow_up_machine", property_name=line.name)
        response.hangup()
        return response
    follow_up.last_outcome = "answered"
    ticket = follow_up.ticket
    day = called_at(ticket).astimezone(ZoneInfo(line.timezone))
    say_prompt(
        response,
        "follow_up_greeting",
        property_name=line.name,
        date_spoken=f"{day.month}月{day.day}日",
        category=CATEGORY_LABELS[ticket.category],
    )
    ask_resolved(response)
    return response


def choose_resolved(turn: Turn) -> VoiceResponse:
    """1 = resolved, 2 = not resolved, 9 = no more follow-up calls; E7 for silence and wrong keys."""
    response = VoiceResponse()
    follow_up = follow_up_of(turn)
    if follow_up is None or follow_up.state != FollowUpState.CALLING:
        goodbye(response)
        return response
    key = turn.digits
    if key in ("1", "2"):
        follow_up.resolved = key == "1"
        ask_satisfaction(response)
    elif key == OPT_OUT_KEY:
        record_opt_out(turn.session, follow_up, turn.call.call_sid)
        goodbye(response, prompt("follow_up_opted_out"))
    else:
        retry_or_give_up(
            turn,
            response,
            "follow_up_resolved",
            ask_again=lambda: ask_resolved(response),
            give_up=lambda: goodbye(response, prompt("follow_up_not_heard")),
        )
    return response


def choose_satisfaction(turn: Turn) -> VoiceResponse:
    """1–5: the answers go on the ticket at once (close or reopen); then the optional comment."""
    response = VoiceResponse()
    follow_up = follow_up_of(turn)
    if follow_up is None or follow_up.state != FollowUpState.CALLING or follow_up.resolved is None:
        goodbye(response)
        return response
    key = turn.digits
    if len(key) == 1 and key in SATISFACTION_KEYS:
        record_answers(turn.session, follow_up, resolved=follow_up.resolved, score=int(key))
        if not follow_up.resolved:
            say_prompt(response, "follow_up_reopened")
        ask_comment(response)
    else:
        retry_or_give_up(
            turn,
            response,
            "follow_up_satisfaction",
            ask_again=lambda: ask_satisfaction(response),
            give_up=lambda: goodbye(response, prompt("follow_up_not_heard")),
        )
    return response


def keep_comment(turn: Turn, *, twilio_status: str | None = None) -> None:
    """The comment recording on the outbound call and its follow-up, and its download once it has a URL."""
    sid = turn.form.get("RecordingSid", "").strip()[:64]
    if not sid:
        return
    duration = turn.form.get("RecordingDuration", "")
    recording = register_recording(
        turn.session,
        turn.call,
        sid,
        source=RecordingSource.MESSAGE,
        source_url=turn.form.get("RecordingUrl") or None,
        duration=float(duration) if duration.isdigit() else None,
        twilio_status=twilio_status,
    )
    follow_up = follow_up_of(turn)
    if follow_up is not None:
        attach_comment(turn.session, follow_up, recording)
    if twilio_status != "absent" and recording.source_url and recording.state == RecordingState.PENDING:
        turn.session.flush()
        download_recording.schedule(turn.session, recording.id)


def comment_recorded(turn: Turn) -> VoiceResponse:
    """The comment's Record action: keep it, thank, 再见 (unless the resident already hung up)."""
    keep_comment(turn)
    response = VoiceResponse()
    if turn.form.get("Digits") == "hangup":
        return response  # Twilio ignores this answer; the comment is kept
    goodbye(response, prompt("follow_up_thanks"))
    return response


def comment_recording_status(turn: Turn) -> VoiceResponse:
    """The comment's recording status callback: keep it and fetch the audio (as messages are)."""
    keep_comment(turn, twilio_status=turn.form.get("RecordingStatus", "")[:32] or None)
    return VoiceResponse()


def follow_up_call_status(turn: Turn) -> VoiceResponse:
    """The outbound call's status callback: how the attempt ended. Nobody answered the questions (no answer,
    busy, failed, a machine, a hang-up first) → tried again later or, after the last attempt, by hand."""
    status, _ = note_call_status(turn)
    call = turn.call
    if status not in FINAL_CALL_STATUSES:
        return VoiceResponse()
    follow_up = follow_up_of(turn)
    if follow_up is None or follow_up.state != FollowUpState.CALLING or follow_up.call_sid != call.call_sid:
        return VoiceResponse()  # answered already, or a late callback of an earlier attempt
    answered_by = turn.form.get("AnsweredBy", "")
    if status == "completed" and follow_up.resolved is False:
        record_answers(turn.session, follow_up, resolved=False, score=None)  # "not resolved" is enough to act on
    elif status == "completed":
        machine = follow_up.last_outcome == "machine" or answered_by.startswith("machine") or answered_by == "fax"
        attempt_ended(turn.session, follow_up, "machine" if machine else "hung-up", turn.settings, utcnow())
    else:
        attempt_ended(turn.session, follow_up, status, turn.settings, utcnow())
    return VoiceResponse()
