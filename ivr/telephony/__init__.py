"""The voice blueprint: Twilio's webhooks, each one step of the call, all signature-checked."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Flask
from flask_sock import Sock
from twilio.twiml.voice_response import VoiceResponse

from ivr.telephony import (
    call_back,
    callbacks,
    fees,
    media,
    menu,
    message,
    outbound,
    person,
    resident,
    room,
    satisfaction,
)
from ivr.telephony.security import require_twilio_signature
from ivr.telephony.webhook import Turn, twilio_webhook

Step = Callable[[Turn], VoiceResponse]
OnError = Callable[[dict[str, str]], VoiceResponse]

URL_PREFIX = "/twilio"
blueprint = Blueprint("telephony", __name__, url_prefix=URL_PREFIX)
blueprint.before_request(require_twilio_signature)
blueprint.before_request(message.finish_live_take)  # outside the webhook's transaction

# path → (step, which parameter names the call[, what the caller hears when the step fails: else
# callbacks.trouble_response]); the one list of the line's webhook paths
STEPS: dict[str, tuple[Step, str] | tuple[Step, str, OnError]] = {
    "voice": (menu.answer_call, "CallSid"),
    "menu": (menu.choose_from_menu, "CallSid"),
    "room/registered": (resident.choose_registered_room, "CallSid"),
    "room": (room.enter_room, "CallSid"),
    "room/confirm": (room.confirm_room, "CallSid"),
    "fees/next": (fees.after_balance, "CallSid"),
    "recorded": (message.message_recorded, "CallSid"),
    "record/empty": (message.message_empty, "CallSid"),
    "read-back": (message.read_back_when_ready, "CallSid"),
    "confirm": (message.confirm_message, "CallSid"),
    "satisfaction": (satisfaction.rate_the_call, "CallSid", satisfaction.trouble_response),
    "dial-result": (person.dial_finished, "CallSid"),
    "dial-status": (person.dial_progress, "ParentCallSid"),
    "status": (callbacks.call_status_changed, "CallSid"),
    "recording-status": (callbacks.recording_status_changed, "CallSid"),
    "fallback": (callbacks.fallback, "CallSid"),
    # The follow-up call (回访) the line places itself (ivr.followup.calls)
    "outbound/answer": (outbound.answer_follow_up, "CallSid", outbound.trouble_response),
    "outbound/resolved": (outbound.choose_resolved, "CallSid", outbound.trouble_response),
    "outbound/satisfaction": (outbound.choose_satisfaction, "CallSid", outbound.trouble_response),
    "outbound/comment": (outbound.comment_recorded, "CallSid", outbound.trouble_response),
    "outbound/recording-status": (outbound.comment_recording_status, "CallSid", outbound.trouble_response),
    "outbound/status": (outbound.follow_up_call_status, "CallSid", outbound.trouble_response),
    # A staff call-back from the console (回拨, ivr.followup.call_back): the staff member's leg, then the resident
    "call-back/staff": (call_back.staff_answered, "CallSid", call_back.trouble_response),
    "call-back/connect": (call_back.staff_confirmed, "CallSid", call_back.trouble_response),
    "call-back/dial-result": (call_back.resident_dial_finished, "CallSid", call_back.trouble_response),
    "call-back/status": (call_back.staff_call_status, "CallSid", call_back.trouble_response),
}

for path, (step, sid_param, *own_error) in STEPS.items():
    on_error = own_error[0] if own_error else callbacks.trouble_response
    view = twilio_webhook(path, on_error=on_error, sid_param=sid_param)(step)
    blueprint.add_url_rule(f"/{path}", endpoint=path.replace("/", "_"), view_func=view, methods=["POST"])

# The media WebSocket (Twilio Media Streams), behind the same signature guard: checked before the upgrade.
Sock().route(media.STREAM_PATH, bp=blueprint)(media.media_stream)


def webhook_path(path: str) -> str:
    """The URL path Twilio requests for a step, e.g. `/twilio/voice`; a path that is not a step is an error."""
    if path not in STEPS:
        raise KeyError(f"no webhook step {path!r}")
    return f"{URL_PREFIX}/{path}"


def init_app(app: Flask) -> None:
    media.init_app(app)
    app.register_blueprint(blueprint)
