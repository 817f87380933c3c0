"""The frame writes each answer's XML itself (ivr.telephony.twiml.render): the same characters as twilio's
VoiceResponse.to_xml, for every verb the line uses and for every answer of whole calls."""

from __future__ import annotations

import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from ivr.devphone.callers import HANGUP, SILENCE, DialOutcome, Message
from ivr.telephony import twiml, webhook
from ivr.telephony.twiml import RenderedResponse, render
from tests.factories import DUAL_WAV, HELLO_WAV


def every_verb() -> VoiceResponse:
    response = VoiceResponse()
    gather = response.gather(input="dtmf", action="https://x.example/twilio/menu?a=1&b=2", num_digits=1, timeout=6)
    gather.say("您好 <房号> & \"引号\" '单'\n换行\t制表", language="cmn-CN", voice="Polly.Zhiyu")
    response.redirect("https://x.example/twilio/menu", method="POST")
    start = response.start()
    stream = start.stream(url="wss://x.example/twilio/media", name="take-1", track="inbound_track")
    stream.parameter(name="callSid", value="CA" + "1" * 32)
    response.record(action="https://x.example/twilio/recorded", play_beep=True, finish_on_key="#", max_length=180)
    response.stop().stream(name="take-1")
    dial = Dial(action="https://x.example/twilio/dial-result", timeout=15, record="record-from-answer-dual")
    dial.number("+8613800000001", status_callback_event="initiated ringing answered completed")
    response.append(dial)
    response.say("")  # no text: a self-closing element
    response.pause(length=10)
    response.hangup()
    return response


def test_every_verb_the_line_uses_renders_as_twilio_renders_it() -> None:
    response = every_verb()
    assert render(response) == response.to_xml()


def test_text_children_and_empty_answers_render_as_twilio_renders_them() -> None:
    empty = VoiceResponse()
    assert render(empty) == empty.to_xml() == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    mixed = VoiceResponse()
    mixed.nest("before")
    mixed.pause(length=1)
    mixed.nest("first tail")
    mixed.nest("last tail wins")
    assert render(mixed) == mixed.to_xml()
    assert render(RenderedResponse.of(every_verb())) == every_verb().to_xml()


def test_a_lone_surrogate_is_rendered_by_twilio() -> None:
    response = VoiceResponse()
    response.say("\ud800")
    assert render(response) == response.to_xml()


@pytest.fixture
def checked_render(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every answer the frame renders, checked against twilio's own rendering."""
    rendered: list[str] = []

    def render_and_check(response: VoiceResponse) -> str:
        text = twiml.render(response)
        assert text == response.to_xml()
        rendered.append(text)
        return text

    monkeypatch.setattr(webhook, "render", render_and_check)
    return rendered


@pytest.mark.parametrize(
    "script",
    [
        ["1", "3*2*501#", "1", Message(HELLO_WAV), "2", Message(HELLO_WAV), "1"],
        ["0", DialOutcome("completed", recording_wav=DUAL_WAV)],
        ["9", DialOutcome("busy"), Message(HELLO_WAV), "1"],
        [SILENCE, "7", "3", "3*2*501#", HANGUP],
        ["1", "bad#", "3*2*501#", "2", "3*2*501#", "1", HANGUP],
    ],
)
def test_every_answer_of_whole_calls_is_rendered_as_twilio_renders_it(phone, checked_render, script) -> None:
    phone.call(script, from_="+8613912345678").raise_for_errors()
    assert len(checked_render) >= 4
