"""Building TwiML: Mandarin speech, absolute ASCII action URLs, the XML response."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response
from twilio.twiml.voice_response import VoiceResponse

from ivr.runtime import current_settings
from ivr.telephony.prompts import prompt

LANGUAGE = "cmn-CN"
VOICE = "Polly.Zhiyu"


def say(response: VoiceResponse, text: str) -> None:
    """Speak Mandarin text."""
    response.say(text, language=LANGUAGE, voice=VOICE)


def say_prompt(response: VoiceResponse, key: str, **values: object) -> None:
    """Speak the prompt `key` from prompts.toml."""
    say(response, prompt(key, **values))


def webhook_url(path: str, **query: str) -> str:
    """The absolute URL Twilio should request next (signatures are computed over it)."""
    url = f"{current_settings().public_url}/twilio/{path}"
    return f"{url}?{urlencode(query)}" if query else url


def twiml_response(body: str) -> Response:
    return Response(body, mimetype="text/xml")
