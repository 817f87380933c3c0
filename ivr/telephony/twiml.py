"""Building TwiML: Mandarin speech, absolute ASCII action URLs, the XML response."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response
from twilio.twiml import TwiML, TwiMLException
from twilio.twiml.voice_response import VoiceResponse

from ivr.runtime import current_settings
from ivr.telephony.prompts import prompt

LANGUAGE = "cmn-CN"
VOICE = "Polly.Zhiyu"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


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


def websocket_url(url: str) -> str:
    """The same address for a WebSocket: https:// → wss://, http:// → ws://."""
    return "ws" + url.removeprefix("http") if url.startswith("http") else url


class RenderedResponse(VoiceResponse):
    """An answer that is the same for every call, built with VoiceResponse and rendered once: the frame
    turns it into text without building the XML tree again. It takes no more verbs."""

    def __init__(self, xml: str) -> None:
        super().__init__()
        self.rendered = xml

    @classmethod
    def of(cls, response: VoiceResponse) -> RenderedResponse:
        return cls(response.to_xml())

    def nest(self, verb: TwiML | str) -> TwiML | str:
        raise TwiMLException("a rendered response is final; build a new VoiceResponse instead")

    def to_xml(self, xml_declaration: bool = True) -> str:
        return self.rendered if xml_declaration else self.rendered.removeprefix(XML_DECLARATION)


def twiml_response(body: str) -> Response:
    return Response(body, mimetype="text/xml")
