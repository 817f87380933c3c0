"""Building TwiML: Mandarin speech, absolute ASCII action URLs, the XML response."""

from __future__ import annotations

import json
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


def render(response: TwiML) -> str:
    """The answer as text: the same characters as `str(response)` (twilio's to_xml), written directly where
    twilio builds an ElementTree and serialises it in Python, which took about 0.2 ms for a Gather."""
    if isinstance(response, RenderedResponse):
        return response.rendered
    parts = [XML_DECLARATION]
    try:
        _write(response, parts)
        text = "".join(parts)
        text.encode()
    except (TypeError, AttributeError, UnicodeEncodeError):
        # A value that is not text, or a lone surrogate (written as a character reference): twilio's way.
        return str(response.to_xml())
    return text


def _write(node: TwiML, parts: list[str]) -> None:
    """One element as ElementTree writes what TwiML.xml() builds: attributes sorted, booleans lower-case,
    the value (a dict as JSON) then text children; a text child after an element is that element's tail
    (the last one wins, as in TwiML.xml), an element with neither text nor children closes itself."""
    parts.append("<" + node.name)
    for name in sorted(node.attrs):
        value = node.attrs[name]
        parts.append(f' {name}="{_attribute(str(value).lower() if isinstance(value, bool) else str(value))}"')
    text = node.value
    if isinstance(text, dict):
        text = json.dumps(text)
    children: list[tuple[TwiML, str | None]] = []
    for verb in node.verbs:
        if isinstance(verb, str):
            if children:
                children[-1] = (children[-1][0], verb)
            else:
                text = verb
        else:
            children.append((verb, None))
    if not text and not children:
        parts.append(" />")
        return
    parts.append(">")
    if text:
        parts.append(_text(text))
    for child, tail in children:
        _write(child, parts)
        if tail:
            parts.append(_text(tail))
    parts.append(f"</{node.name}>")


def _text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attribute(text: str) -> str:
    for plain, escaped in _ATTRIBUTE_ESCAPES:
        if plain in text:
            text = text.replace(plain, escaped)
    return text


_ATTRIBUTE_ESCAPES = (
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ('"', "&quot;"),
    ("\r", "&#13;"),
    ("\n", "&#10;"),
    ("\t", "&#09;"),
)


def twiml_response(body: str) -> Response:
    return Response(body, mimetype="text/xml")
