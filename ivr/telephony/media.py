"""The media WebSocket: Twilio's Media Streams carry the caller's audio while they record into a live take.

One frame for every stream, like the webhook frame: the handshake is signature-checked by the blueprint's
guard before anything is read (the URL Twilio signs is the wss:// one in the TwiML); `start` names the
call and the take; `media` frames feed the take; `stop` (or the socket closing) ends it. A stream that
cannot be used is closed politely and changes nothing for the call: its take is transcribed after the
download, as every take still is.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any, cast

from flask import Flask, current_app
from simple_websocket import Server

from ivr.config import Settings
from ivr.speech.engine import SpeechEngine
from ivr.speech.live import LivePool, LiveTake
from ivr.speech.status import speech_model_installed, speech_model_path
from ivr.telephony.twiml import websocket_url

log = logging.getLogger(__name__)

STREAM_PATH = "/media"  # under the blueprint's /twilio
LIVE_STREAM_SPARE_THREADS = 4  # beyond the webhooks' and the live takes': streams being declined or ending
MAX_MESSAGE_BYTES = 16 * 1024  # a media message is about 300 bytes; start carries the parameters
IDLE_SECONDS = 10  # Twilio sends a frame every 20 ms: a stream silent this long is gone
MAX_TAKE_NUMBER = 99

# WebSocket close codes (RFC 6455): refused for what it sent; the server is busy, try later.
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


class StreamRefused(Exception):
    """The stream's messages cannot be used; the message says why (logged, then the socket is closed)."""


def media_stream_url(public_url: str) -> str:
    """Where Twilio opens the media WebSocket: the webhooks' origin, ws(s)://…/twilio/media."""
    return websocket_url(public_url) + "/twilio" + STREAM_PATH


def live_pool(app: Flask | None = None) -> LivePool:
    return cast(LivePool, (app or current_app).extensions["ivr.live"])


def live_transcription_on(settings: Settings) -> bool:
    """Whether the line asks Twilio for the caller's audio while they record."""
    return settings.live_streams > 0 and speech_model_installed(settings)


def media_stream(ws: Server) -> None:
    """The view: one Twilio Media Stream, from `connected` to `stop`."""
    settings = cast(Settings, current_app.config["IVR"])
    pool = live_pool()
    take: LiveTake | None = None
    try:
        while (raw := ws.receive(timeout=IDLE_SECONDS)) is not None:
            message = _message(raw)
            event = message.get("event")
            if event == "start" and take is None:
                key = _take_key(message, settings)
                take = pool.open(key)
                if take is None:
                    log.info("live take %s/%s declined: %d takes already live", *key, pool.active)
                    ws.close(TRY_AGAIN_LATER, "no live decoder free: the take is transcribed after the download")
                    return
            elif event == "media" and take is not None:
                inbound = message.get("media", {}).get("track", "inbound") == "inbound"
                if inbound and not take.feed(_audio(message)) and take.state == "given up":
                    ws.close(TRY_AGAIN_LATER, take.reason)
                    return
                # After the Record action the audio is the caller listening: read and dropped until stop.
            elif event == "stop":
                return
            elif event not in ("connected", "mark", "dtmf", "media"):
                raise StreamRefused(f"unexpected {event!r} message")
    except StreamRefused as refused:
        log.warning("media stream refused: %s", refused)
        ws.close(POLICY_VIOLATION, str(refused)[:120])
    finally:
        if take is not None:
            take.end()


def _message(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise StreamRefused("a message that is not JSON") from None
    if not isinstance(message, dict):
        raise StreamRefused("a message that is not a JSON object")
    return message


def _take_key(message: dict[str, Any], settings: Settings) -> tuple[str, int]:
    """(CallSid, take) from a `start` message, checked against what the TwiML asked for."""
    start = message.get("start")
    if not isinstance(start, dict):
        raise StreamRefused("start without its details")
    if start.get("accountSid") != settings.twilio_account_sid:
        raise StreamRefused("a stream of another Twilio account")
    parameters = start.get("customParameters") or {}
    call_sid, take = str(start.get("callSid", "")), str(parameters.get("take", ""))
    if not call_sid or parameters.get("callSid") != call_sid:
        raise StreamRefused("the stream's call is not the one its parameters name")
    if not take.isdigit() or not 1 <= int(take) <= MAX_TAKE_NUMBER:
        raise StreamRefused(f"take {take!r} is not a take number")
    media_format = start.get("mediaFormat") or {}
    heard = (media_format.get("encoding"), str(media_format.get("sampleRate")), str(media_format.get("channels", 1)))
    if heard != ("audio/x-mulaw", "8000", "1"):
        raise StreamRefused(f"audio in {media_format!r}, not 8 kHz mono μ-law")
    return call_sid, int(take)


def _audio(message: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(str(message["media"]["payload"]), validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise StreamRefused("a media message without base64 audio") from None


def init_app(app: Flask) -> None:
    """The live pool for this app (its decoders start with the first take)."""
    settings = cast(Settings, app.config["IVR"])
    path = speech_model_path(settings)
    app.extensions["ivr.live"] = LivePool(lambda: SpeechEngine.from_path(path), capacity=settings.live_streams)
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"max_message_size": MAX_MESSAGE_BYTES})
