"""The dev phone against a throwaway TwiML app defined here (not the project's app), so these tests
pin down Twilio's behaviour as emulated, independent of our menus."""

from __future__ import annotations

import _thread
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.serving import make_server

from ivr.cli import main
from ivr.cli_state import CliState
from ivr.config import load_settings
from ivr.devphone import (
    HANGUP,
    SILENCE,
    CallerScript,
    CallResult,
    DialOutcome,
    FlaskClientTransport,
    HttpTransport,
    Message,
    RecordingServer,
    TwilioEmulator,
)
from ivr.devphone.cli import DEFAULT_API_PORT, outbound_api_port, parse_keys
from ivr.devphone.net import free_port
from ivr.twilio_rest import twilio_client

PUBLIC_URL = "https://ivr.example.test"
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "devphone-test-auth-token"
AUDIO = Path(__file__).parent / "fixtures" / "audio"
HELLO = AUDIO / "hello.wav"  # 2.0 s, 8 kHz mono
DUAL = AUDIO / "dial_dual.wav"  # 1.5 s, 8 kHz stereo
EMPTY = AUDIO / "empty.wav"  # no frames
SID = re.compile(r"^(CA|RE)[0-9a-f]{32}$")

Handler = Callable[[dict[str, str]], Any]


# --- the throwaway app --------------------------------------------------------------------------------


@dataclass
class Received:
    """One request as the app saw it."""

    path: str
    method: str
    form: dict[str, str]
    args: dict[str, str]
    headers: dict[str, str]
    signature_ok: bool


def make_app(handlers: Mapping[str, Handler], auth_token: str = AUTH_TOKEN) -> Flask:
    """A Flask app answering `handlers[path](params)` (TwiML) and 204 for any other path, that refuses
    requests whose X-Twilio-Signature does not match the public URL (as a real app must)."""
    app = Flask("devphone_test_app")
    received: list[Received] = []
    app.config["RECEIVED"] = received
    validator = RequestValidator(auth_token)

    @app.route("/<path:path>", methods=["GET", "POST"])
    def webhook(path: str) -> Any:
        query = request.query_string.decode()
        url = PUBLIC_URL + request.path + (f"?{query}" if query else "")
        form = request.form if request.method == "POST" else {}
        signature_ok = validator.validate(url, form, request.headers.get("X-Twilio-Signature", ""))
        received.append(
            Received(
                request.path,
                request.method,
                request.form.to_dict(),
                request.args.to_dict(),
                dict(request.headers),
                signature_ok,
            )
        )
        if not signature_ok:
            abort(403)
        handler = handlers.get(request.path)
        if handler is None:
            return "", 204
        reply = handler({**request.args.to_dict(), **request.form.to_dict()})
        if isinstance(reply, VoiceResponse):
            return Response(str(reply), mimetype="text/xml")
        return reply

    return app


def received(app: Flask) -> list[Received]:
    return app.config["RECEIVED"]  # type: ignore[no-any-return]


def say(text: str) -> VoiceResponse:
    response = VoiceResponse()
    response.say(text, language="cmn-CN")
    return response


def menu_handlers() -> dict[str, Handler]:
    """A small IVR: menu → unit number → message → thanks."""

    def voice(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        gather = response.gather(num_digits=1, action="/twilio/menu", timeout=5)
        gather.say("欢迎致电幸福家园物业。报修请按1。", language="cmn-CN", voice="Polly.Zhiyu")
        response.say("没有收到您的选择，再见。", language="cmn-CN")
        return response

    def menu(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        gather = response.gather(finish_on_key="#", action="unit")  # relative to /twilio/menu
        gather.say("请输入楼号、单元和房号，以井号键结束。", language="cmn-CN")
        return response

    def unit(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.say(f"您输入的是{form['Digits']}。请在提示音后留言，按井号键结束。", language="cmn-CN")
        response.record(
            action="/twilio/recorded",
            max_length=60,
            finish_on_key="#",
            recording_status_callback="/twilio/recording-status",
        )
        response.say("没有录到留言。", language="cmn-CN")
        return response

    def recorded(form: dict[str, str]) -> VoiceResponse:
        response = say("留言已收到，谢谢。")
        response.hangup()
        return response

    return {"/twilio/voice": voice, "/twilio/menu": menu, "/twilio/unit": unit, "/twilio/recorded": recorded}


@pytest.fixture
def recordings() -> Iterator[RecordingServer]:
    with RecordingServer(ACCOUNT_SID, AUTH_TOKEN) as server:
        yield server


Phone = Callable[..., tuple[TwilioEmulator, Flask]]


@pytest.fixture
def phone(recordings: RecordingServer) -> Phone:
    """Factory: an emulator wired through Flask's test client to a throwaway app with `handlers`."""

    def build(handlers: Mapping[str, Handler], auth_token: str = AUTH_TOKEN, **options: Any) -> Any:
        app = make_app(handlers)
        emulator = TwilioEmulator(
            FlaskClientTransport(app, PUBLIC_URL), PUBLIC_URL, ACCOUNT_SID, auth_token, recordings, **options
        )
        return emulator, app

    return build


def kinds(result: CallResult) -> list[str]:
    return [exchange.kind for exchange in result.requests]


# --- requests, signatures, parameters ----------------------------------------------------------------


def test_every_webhook_is_signed_over_the_public_url_with_twilio_headers(phone: Phone) -> None:
    emulator, app = phone(menu_handlers())
    result = emulator.call(["1", "3*2*501#", Message(HELLO)], from_="+8613912345678")

    result.raise_for_errors()
    seen = received(app)
    assert len(seen) == len(result.requests) >= 5
    assert all(r.signature_ok for r in seen)
    assert {r.headers["User-Agent"] for r in seen} == {"TwilioProxy/1.1"}
    tokens = [r.headers["I-Twilio-Idempotency-Token"] for r in seen]
    assert len(set(tokens)) == len(tokens)
    first = seen[0].form
    assert seen[0].path == "/twilio/voice" and seen[0].method == "POST"
    assert SID.match(first["CallSid"]) and first["CallSid"] == result.call_sid
    assert first["AccountSid"] == ACCOUNT_SID
    assert first["From"] == first["Caller"] == "+8613912345678"
    assert (first["Direction"], first["ApiVersion"], first["CallStatus"]) == ("inbound", "2010-04-01", "ringing")
    assert first["FromCountry"] == "CN"
    assert seen[1].form["CallStatus"] == "in-progress"


def test_a_wrong_auth_token_is_refused_and_ends_the_call_as_an_application_error(phone: Phone) -> None:
    emulator, app = phone(menu_handlers(), auth_token="not-the-token")
    result = emulator.call(["1"])

    assert not result.ok
    assert result.errors[0].startswith("11200") and "403" in result.errors[0]
    assert result.said == []
    assert not any(r.signature_ok for r in received(app))


# --- Gather -------------------------------------------------------------------------------------------


def test_gather_posts_digits_and_the_finishing_key(phone: Phone) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call(["1", "3*2*501#", Message(HELLO)])

    result.raise_for_errors()
    gathers = result.requests_of("gather")
    assert [g.url for g in gathers] == [f"{PUBLIC_URL}/twilio/menu", f"{PUBLIC_URL}/twilio/unit"]
    assert (gathers[0].params["Digits"], gathers[0].params["FinishedOnKey"]) == ("1", "")
    assert (gathers[1].params["Digits"], gathers[1].params["FinishedOnKey"]) == ("3*2*501", "#")
    assert result.said[0] == "欢迎致电幸福家园物业。报修请按1。"
    assert result.heard[0].voice == "Polly.Zhiyu" and result.heard[0].language == "cmn-CN"
    assert "您输入的是3*2*501。请在提示音后留言，按井号键结束。" in result.said
    assert result.said[-1] == "留言已收到，谢谢。"
    assert result.ended_by == "twilio"
    assert result.unused_steps == []


def test_gather_silence_falls_through_to_the_next_verb(phone: Phone) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call([SILENCE])

    assert result.requests_of("gather") == []
    assert result.said[-1] == "没有收到您的选择，再见。"
    assert result.ended_by == "twilio"


def test_gather_silence_with_action_on_empty_result_posts_empty_digits(phone: Phone) -> None:
    def voice(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.gather(action="/twilio/empty", action_on_empty_result=True, timeout=3).say("请按键。")
        response.say("不应听到这一句。")
        return response

    emulator, _ = phone({"/twilio/voice": voice, "/twilio/empty": lambda form: say("没有按键。")})
    result = emulator.call([SILENCE])

    assert result.last("gather").params["Digits"] == ""
    assert result.said == ["请按键。", "没有按键。"]


def test_hanging_up_at_a_gather_ends_the_call_without_an_action_request(phone: Phone) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call([HANGUP])

    assert result.ended_by == "caller"
    assert kinds(result) == ["voice", "call-status"]
    assert result.said == ["欢迎致电幸福家园物业。报修请按1。"]


def test_a_script_that_runs_out_hangs_up(phone: Phone) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call(["1"])

    assert result.ended_by == "caller"
    assert kinds(result) == ["voice", "gather", "call-status"]


def test_keys_beyond_num_digits_are_lost_with_a_warning(phone: Phone) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call(["12"])

    assert result.last("gather").params["Digits"] == "1"
    assert any("'2'" in warning for warning in result.warnings)


def test_a_script_step_that_cannot_answer_the_verb_is_an_error(phone: Phone) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call([Message(HELLO)])

    assert result.errors == [f"script step 1 ({Message(HELLO)!r}) cannot answer <Gather>"]
    with pytest.raises(AssertionError, match="cannot answer <Gather>"):
        result.raise_for_errors()


# --- Record and the recording server ------------------------------------------------------------------


def test_record_posts_the_recording_and_its_status_callback(phone: Phone, recordings: RecordingServer) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call(["1", "3*2*501#", Message(HELLO, finish="#")])

    result.raise_for_errors()
    action = result.last("record")
    sid = action.params["RecordingSid"]
    assert action.url == f"{PUBLIC_URL}/twilio/recorded"
    assert SID.match(sid)
    assert action.params["RecordingUrl"] == (
        f"{recordings.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"
    )
    assert (action.params["RecordingDuration"], action.params["Digits"]) == ("2", "#")
    assert result.recordings == {sid: HELLO}

    status = result.last("recording-status")
    assert status.url == f"{PUBLIC_URL}/twilio/recording-status"
    assert status.params["RecordingSid"] == sid
    assert status.params["RecordingUrl"] == action.params["RecordingUrl"]
    assert status.params["CallSid"] == result.call_sid
    assert status.params["AccountSid"] == ACCOUNT_SID
    expected = {"RecordingStatus": "completed", "RecordingDuration": "2", "RecordingChannels": "1"}
    assert {k: status.params[k] for k in expected} == expected
    assert status.params["RecordingSource"] == "RecordVerb"
    assert parsedate_to_datetime(status.params["RecordingStartTime"]).tzinfo is not None
    assert kinds(result).index("record") < kinds(result).index("recording-status")


def test_the_recording_server_serves_exact_bytes_only_with_credentials(
    phone: Phone, recordings: RecordingServer
) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call(["1", "3*2*501#", Message(HELLO)])
    url = result.last("record").params["RecordingUrl"]
    sid = result.last("record").params["RecordingSid"]

    wav = requests.get(url + ".wav", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert wav.status_code == 200
    assert wav.headers["Content-Type"] == "audio/x-wav"
    assert wav.content == HELLO.read_bytes()
    assert requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).content == HELLO.read_bytes()
    assert requests.get(url + ".wav", timeout=5).status_code == 401
    assert requests.get(url + ".wav", auth=(ACCOUNT_SID, "wrong"), timeout=5).status_code == 401
    unknown = url.replace(sid, "RE" + "0" * 32)
    assert requests.get(unknown + ".wav", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).status_code == 404
    meta = requests.get(url + ".json", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).json()
    assert (meta["sid"], meta["call_sid"], meta["duration"]) == (sid, result.call_sid, "2")
    assert recordings.fetch_count(sid) == 3


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="MP3 renditions are made with ffmpeg")
def test_the_recording_server_serves_an_mp3_rendition(recordings: RecordingServer) -> None:
    url = recordings.add("RE" + "a" * 32, HELLO)
    mp3 = requests.get(url + ".mp3", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)
    assert mp3.status_code == 200
    assert mp3.headers["Content-Type"] == "audio/mpeg"
    assert mp3.content[:3] == b"ID3" or mp3.content[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")


def test_the_recording_server_can_fail_the_next_fetches(recordings: RecordingServer) -> None:
    sid = "RE" + "b" * 32
    url = recordings.add(sid, HELLO) + ".wav"
    recordings.fail_next(sid, times=2, status=500)

    statuses = [requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert recordings.fetch_count(sid) == 3
    recordings.fail_next(sid, status=404)
    assert requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).status_code == 404
    assert requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).status_code == 200


@pytest.mark.parametrize("nothing", [SILENCE, Message(EMPTY)], ids=["silence", "empty-wav"])
def test_an_empty_recording_requests_nothing_and_continues_with_the_next_verb(
    phone: Phone, recordings: RecordingServer, nothing: Any
) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call(["1", "3*2*501#", nothing])

    assert result.requests_of("record") == [] and result.requests_of("recording-status") == []
    assert result.said[-1] == "没有录到留言。"
    assert result.recordings == {} and recordings.recording_sids == []


def test_hanging_up_after_speaking_still_posts_the_recording_and_ignores_the_reply(phone: Phone) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call(["1", "3*2*501#", Message(HELLO, finish="hangup")])

    action = result.last("record")
    assert (action.params["Digits"], action.params["CallStatus"]) == ("hangup", "completed")
    assert "留言已收到，谢谢。" not in result.said  # the reply to a hung-up call is not played
    assert result.ended_by == "caller"
    assert kinds(result)[-3:] == ["record", "recording-status", "call-status"]


def test_a_key_outside_finish_on_key_lets_the_recording_time_out(phone: Phone) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call(["1", "3*2*501#", Message(HELLO, finish="*")])

    assert "Digits" not in result.last("record").params
    assert any("does not end a <Record" in warning for warning in result.warnings)


@pytest.mark.parametrize(
    ("timing", "expected"),
    [
        ("before-action", ["recording-status", "record", "call-status"]),
        ("end-of-call", ["record", "call-status", "recording-status"]),
    ],
)
def test_recording_status_callbacks_can_arrive_out_of_order(phone: Phone, timing: str, expected: list[str]) -> None:
    emulator, _ = phone(menu_handlers(), recording_callback_timing=timing)
    result = emulator.call(["1", "3*2*501#", Message(HELLO)])

    assert [k for k in kinds(result) if k in expected] == expected
    assert result.last("recording-status").params["RecordingSid"] == result.last("record").params["RecordingSid"]


# --- Dial ---------------------------------------------------------------------------------------------


def dial_handlers(record: bool = False, timeout: int = 20) -> dict[str, Handler]:
    def voice(form: dict[str, str]) -> VoiceResponse:
        response = say("正在为您转接值班人员。")
        options: dict[str, Any] = {"action": "/twilio/dialled", "timeout": timeout}
        if record:
            options |= {"record": "record-from-answer-dual", "recording_status_callback": "/twilio/dial-recording"}
        dial = response.dial(**options)
        dial.number(
            "+8613800000001",
            status_callback="/twilio/dial-status",
            status_callback_event="initiated ringing answered completed",
        )
        response.say("不应听到这一句。")
        return response

    def dialled(form: dict[str, str]) -> VoiceResponse:
        return say(f"转接结果：{form['DialCallStatus']}")

    return {"/twilio/voice": voice, "/twilio/dialled": dialled}


@pytest.mark.parametrize(
    ("status", "events"),
    [
        ("completed", ["initiated", "ringing", "in-progress", "completed"]),
        ("no-answer", ["initiated", "ringing", "no-answer"]),
        ("busy", ["initiated", "busy"]),
    ],
)
def test_dial_outcomes_and_number_status_events(phone: Phone, status: str, events: list[str]) -> None:
    emulator, _ = phone(dial_handlers())
    result = emulator.call([DialOutcome(status, ring_seconds=4, talk_seconds=65)])  # type: ignore[arg-type]

    result.raise_for_errors()
    action = result.last("dial")
    assert action.params["DialCallStatus"] == status
    assert SID.match(action.params["DialCallSid"])
    assert action.params.get("DialCallDuration") == ("65" if status == "completed" else None)
    legs = result.requests_of("dial-status")
    assert [leg.params["CallStatus"] for leg in legs] == events
    assert [leg.params["SequenceNumber"] for leg in legs] == [str(i) for i in range(len(events))]
    assert {leg.params["ParentCallSid"] for leg in legs} == {result.call_sid}
    assert {leg.params["CallSid"] for leg in legs} == {action.params["DialCallSid"]}
    assert {leg.params["To"] for leg in legs} == {"+8613800000001"}
    assert legs[-1].params["CallDuration"] == ("65" if status == "completed" else "0")
    assert result.said == ["正在为您转接值班人员。", f"转接结果：{status}"]
    assert kinds(result).index("dial-status") < kinds(result).index("dial")


def test_a_ring_longer_than_the_dial_timeout_is_no_answer(phone: Phone) -> None:
    emulator, _ = phone(dial_handlers(timeout=20))
    result = emulator.call([DialOutcome("completed", ring_seconds=25)])

    assert result.last("dial").params["DialCallStatus"] == "no-answer"


def test_a_recorded_dial_reports_the_dual_channel_recording(phone: Phone, recordings: RecordingServer) -> None:
    emulator, _ = phone(dial_handlers(record=True))
    result = emulator.call([DialOutcome("completed", talk_seconds=2, recording_wav=DUAL)])

    action = result.last("dial")
    sid = action.params["RecordingSid"]
    assert action.params["RecordingUrl"] == recordings.url_for(sid)
    assert action.params["RecordingDuration"] == "2"
    status = result.last("recording-status")
    assert status.url == f"{PUBLIC_URL}/twilio/dial-recording"
    assert (status.params["RecordingSid"], status.params["RecordingChannels"]) == (sid, "2")
    assert status.params["RecordingSource"] == "DialVerb"
    fetched = requests.get(action.params["RecordingUrl"] + ".wav", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert fetched.content == DUAL.read_bytes()


def test_a_caller_hanging_up_during_the_conversation_gets_the_dial_action_ignored(phone: Phone) -> None:
    emulator, _ = phone(dial_handlers())
    result = emulator.call([DialOutcome("completed", talk_seconds=10, hangup_by="caller")])

    action = result.last("dial")
    assert (action.params["DialCallStatus"], action.params["CallStatus"]) == ("completed", "completed")
    assert result.said == ["正在为您转接值班人员。"]
    assert result.ended_by == "caller"


# --- Redirect, Pause, Play, Hangup, status callback --------------------------------------------------


def test_redirect_resolves_relative_urls_and_signs_get_requests_with_their_query(phone: Phone) -> None:
    def voice(form: dict[str, str]) -> VoiceResponse:
        response = say("第一步。")
        response.pause(length=2)
        response.play("/static/beep.wav")
        response.redirect("next?step=2", method="GET")
        return response

    def step_two(form: dict[str, str]) -> VoiceResponse:
        response = say(f"第{form['step']}步。")
        response.hangup()
        response.say("不应听到这一句。")
        return response

    emulator, app = phone({"/twilio/voice": voice, "/twilio/next": step_two})
    result = emulator.call([])

    result.raise_for_errors()
    assert result.said == ["第一步。", "第2步。"]
    assert [h.kind for h in result.heard] == ["say", "pause", "play", "say"]
    assert result.heard[2].url == f"{PUBLIC_URL}/static/beep.wav"
    redirect = next(r for r in received(app) if r.path == "/twilio/next")
    assert redirect.method == "GET" and redirect.signature_ok
    assert redirect.args["step"] == "2" and redirect.args["CallSid"] == result.call_sid
    assert result.ended_by == "twilio"


def test_the_call_ends_with_a_completed_status_callback(phone: Phone) -> None:
    emulator, _ = phone(menu_handlers())
    result = emulator.call(["1", "3*2*501#", Message(HELLO)])

    final = result.requests[-1]
    assert final.kind == "call-status" and final.url == f"{PUBLIC_URL}/twilio/status"
    assert final.params["CallStatus"] == "completed"
    assert final.params["CallSid"] == result.call_sid
    assert final.params["CallDuration"] == str(result.duration) and result.duration > 5
    assert parsedate_to_datetime(final.params["Timestamp"]).tzinfo is not None


@pytest.mark.parametrize(
    ("reply", "code"),
    [(("boom", 500), "11200"), (("this is not xml", 200), "12100"), (("<Foo/>", 200), "12100")],
    ids=["http-500", "not-xml", "not-response"],
)
def test_an_application_error_ends_the_call(phone: Phone, reply: tuple[str, int], code: str) -> None:
    emulator, _ = phone({"/twilio/voice": lambda form: reply})
    result = emulator.call(["1"])

    assert result.errors[0].startswith(code)
    assert result.said == []
    assert result.heard[-1].text == "We are sorry, an application error has occurred. Goodbye."
    assert kinds(result) == ["voice", "call-status"]


# --- retries and loops --------------------------------------------------------------------------------


def test_retried_webhooks_carry_the_same_idempotency_token(phone: Phone) -> None:
    counter = iter(range(100))

    def voice(form: dict[str, str]) -> VoiceResponse:
        return say(f"第{next(counter)}次")  # deliberately not idempotent

    emulator, app = phone({"/twilio/voice": voice}, retry_webhooks=True)
    result = emulator.call([])

    seen = received(app)
    assert len(seen) == 2 * len(result.requests)
    for first, retry in zip(seen[::2], seen[1::2], strict=True):
        assert first.headers["I-Twilio-Idempotency-Token"] == retry.headers["I-Twilio-Idempotency-Token"]
        assert first.form == retry.form
    assert result.said == ["第1次"]  # the retry's reply is the one executed
    assert result.requests[0].replies_identical is False
    assert result.last("call-status").replies_identical is True


def test_the_loop_guard_stops_a_redirect_loop(phone: Phone) -> None:
    def voice(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.redirect("/twilio/voice")
        return response

    emulator, _ = phone({"/twilio/voice": voice}, max_requests=20)
    result = emulator.call([])

    assert "loop guard" in result.errors[0]
    assert len(result.requests_of("voice") + result.requests_of("redirect")) == 20
    assert result.requests[-1].kind == "call-status"


# --- over HTTP and from the command line ---------------------------------------------------------------


@contextmanager
def serving_app(handlers: Mapping[str, Handler]) -> Iterator[tuple[str, Flask]]:
    """An app answering `handlers` on a real local HTTP server: its URL and the app."""
    app = make_app(handlers)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def served_app() -> Iterator[tuple[str, Flask]]:
    """The menu app on a real local HTTP server."""
    with serving_app(menu_handlers()) as served:
        yield served


def test_http_transport_sends_to_the_server_but_signs_the_public_url(
    served_app: tuple[str, Flask], recordings: RecordingServer
) -> None:
    server_url, app = served_app
    emulator = TwilioEmulator(HttpTransport(server_url, PUBLIC_URL), PUBLIC_URL, ACCOUNT_SID, AUTH_TOKEN, recordings)
    result = emulator.call(["1", "3*2*501#", Message(HELLO)])

    result.raise_for_errors()
    assert result.said[-1] == "留言已收到，谢谢。"
    seen = received(app)
    assert all(r.signature_ok for r in seen) and len(seen) == len(result.requests)
    assert seen[0].headers["X-Forwarded-Host"] == "ivr.example.test"
    assert seen[0].headers["X-Forwarded-Proto"] == "https"


def test_an_unreachable_server_is_an_application_error(recordings: RecordingServer) -> None:
    port = free_port()
    emulator = TwilioEmulator(
        HttpTransport(f"http://127.0.0.1:{port}", PUBLIC_URL, timeout=2),
        PUBLIC_URL,
        ACCOUNT_SID,
        AUTH_TOKEN,
        recordings,
    )
    result = emulator.call(["1"])

    assert result.errors[0].startswith("11200")
    assert result.requests[-1].status == 0


def test_caller_script_defaults_answer_record_and_dial() -> None:
    script = CallerScript(["1"], message=Message(HELLO), dial_outcome=DialOutcome("busy"))
    assert script.answer_record(None) == Message(HELLO)  # type: ignore[arg-type]
    assert script.answer_dial(None) == DialOutcome("busy")  # type: ignore[arg-type]
    assert script.answer_gather(None) == "1"  # type: ignore[arg-type]
    assert script.answer_gather(None) is HANGUP  # type: ignore[arg-type]


def test_parse_keys() -> None:
    assert parse_keys("1,3*2*501#,,h") == ["1", "3*2*501#", SILENCE, HANGUP]


@pytest.fixture
def cli_state(tmp_path: Path) -> CliState:
    settings = load_settings(
        {
            "IVR_ENV": "test",
            "IVR_INSTANCE_DIR": str(tmp_path / "instance"),
            "IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            "IVR_PUBLIC_URL": PUBLIC_URL,
            "IVR_DUTY_NUMBERS": "+8613800000001",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "IVR_SECRET_KEY": "devphone-test-secret-" + "x" * 32,
        }
    )
    return CliState(settings)


def test_ivr_call_with_scripted_keys(served_app: tuple[str, Flask], cli_state: CliState) -> None:
    server_url, app = served_app
    result = CliRunner().invoke(
        main, ["call", "--server", server_url, "--keys", "1,3*2*501#", "--linger", "0"], obj=cli_state
    )

    assert result.exit_code == 0, result.output
    assert "☎ 欢迎致电幸福家园物业。报修请按1。" in result.output
    assert "⌨ 1\n" in result.output and "⌨ 3*2*501#\n" in result.output
    assert "☎ 留言已收到，谢谢。" in result.output
    assert re.search(r"— call CA[0-9a-f]{32} ended by twilio", result.output)
    assert re.search(r"recording RE[0-9a-f]{32}: http://127\.0\.0\.1:\d+/2010-04-01/", result.output)
    assert all(r.signature_ok for r in received(app))


def test_ivr_call_interactive(served_app: tuple[str, Flask], cli_state: CliState) -> None:
    server_url, _ = served_app
    result = CliRunner().invoke(
        main, ["call", "--server", server_url, "--linger", "0"], obj=cli_state, input="1\n3*2*501#\n\n"
    )

    assert result.exit_code == 0, result.output
    assert "● speaking" in result.output
    assert "☎ 留言已收到，谢谢。" in result.output


def test_ivr_call_reports_an_application_error(cli_state: CliState) -> None:
    port = free_port()
    result = CliRunner().invoke(
        main, ["call", "--server", f"http://127.0.0.1:{port}", "--keys", "1", "--linger", "0"], obj=cli_state
    )

    assert result.exit_code == 1
    assert "11200 HTTP retrieval failure" in result.output


# --- `ivr call --answer-outbound`: the line's follow-up calls ring the terminal -------------------------

RESIDENT = "+8613900001111"
LINE_NUMBER = "+861062345678"
RING = "来电 +861062345678 (回访) — 按回车接听,输入 n 拒接"


def follow_up_handlers() -> dict[str, Handler]:
    """A follow-up call as the line makes one: a question, then thanks."""

    def answer(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        gather = response.gather(num_digits=1, action="/twilio/outbound/resolved", timeout=5)
        gather.say("您好，这里是幸福家园物业回访。问题已解决请按1，未解决请按2。", language="cmn-CN")
        return response

    def resolved(form: dict[str, str]) -> VoiceResponse:
        response = say(f"您按的是{form['Digits']}。谢谢，再见。")
        response.hangup()
        return response

    return {"/twilio/outbound/answer": answer, "/twilio/outbound/resolved": resolved}


@pytest.fixture
def follow_up_app() -> Iterator[tuple[str, Flask]]:
    with serving_app(follow_up_handlers()) as served:
        yield served


def place_follow_up_call_when_listening(
    cli_state: CliState, port: int, failures: list[Exception], waiting: threading.Event
) -> threading.Thread:
    """The line's side, in a thread: once the dev phone listens on `port`, place a follow-up call there with
    twilio-python, as the placement job does with IVR_TWILIO_API_URL pointing at it. A failure is kept in
    `failures` and interrupts the command (Ctrl-C) while it is `waiting`: it would wait for the call forever."""

    def place() -> None:
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            client = twilio_client(cli_state.settings.replace(twilio_api_url=f"http://127.0.0.1:{port}"))
            client.calls.create(
                to=RESIDENT,
                from_=LINE_NUMBER,
                url=f"{PUBLIC_URL}/twilio/outbound/answer?follow_up=7&attempt=1",
                status_callback=f"{PUBLIC_URL}/twilio/outbound/status?follow_up=7&attempt=1",
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                machine_detection="Enable",
            )
        except Exception as exc:
            failures.append(exc)
            if waiting.is_set():
                _thread.interrupt_main()

    thread = threading.Thread(target=place, daemon=True)
    thread.start()
    return thread


def answer_outbound(server_url: str, cli_state: CliState, *args: str, input: Any) -> Any:
    """`ivr call --answer-outbound` for one follow-up call the line places while it waits (interrupted after
    20 s: a dev phone still waiting then fails the test instead of hanging it)."""
    port = free_port()
    failures: list[Exception] = []
    waiting = threading.Event()
    waiting.set()
    line = place_follow_up_call_when_listening(cli_state, port, failures, waiting)
    command = ["call", "--answer-outbound", "--server", server_url, "--api-port", str(port), "--calls", "1"]
    watchdog = threading.Timer(20, _thread.interrupt_main)
    watchdog.start()
    try:
        result = CliRunner().invoke(main, [*command, "--linger", "0", *args], obj=cli_state, input=input)
    finally:
        waiting.clear()
        watchdog.cancel()
    line.join(timeout=5)
    assert failures == [], f"the line could not place its call: {failures}"
    return result


def call_statuses(app: Flask) -> list[str]:
    return [r.form["CallStatus"] for r in received(app) if r.path == "/twilio/outbound/status"]


def test_ivr_call_answers_a_follow_up_call_from_the_terminal(
    follow_up_app: tuple[str, Flask], cli_state: CliState
) -> None:
    server_url, app = follow_up_app
    result = answer_outbound(server_url, cli_state, input="\n1\n")  # Enter answers, then 1 at the question

    assert result.exit_code == 0, result.output
    assert RING in result.output
    assert "☎ 您好，这里是幸福家园物业回访。问题已解决请按1，未解决请按2。" in result.output
    assert "⌨ 1\n" in result.output and "☎ 您按的是1。谢谢，再见。" in result.output
    [answered] = [r for r in received(app) if r.path == "/twilio/outbound/answer"]
    assert answered.form["Direction"] == "outbound-api" and answered.form["AnsweredBy"] == "human"
    assert (answered.form["From"], answered.form["To"], answered.args["follow_up"]) == (LINE_NUMBER, RESIDENT, "7")
    assert [r.form["Digits"] for r in received(app) if r.path == "/twilio/outbound/resolved"] == ["1"]
    assert call_statuses(app) == ["initiated", "ringing", "in-progress", "completed"]
    assert all(r.signature_ok for r in received(app))


def test_ivr_call_refuses_a_follow_up_call_as_busy(follow_up_app: tuple[str, Flask], cli_state: CliState) -> None:
    server_url, app = follow_up_app
    result = answer_outbound(server_url, cli_state, input="n\n")

    assert result.exit_code == 0, result.output
    assert RING in result.output and "拒接 (busy)" in result.output
    assert [r.path for r in received(app) if r.path != "/twilio/outbound/status"] == []  # never answered
    assert call_statuses(app) == ["initiated", "ringing", "busy"]


def test_a_follow_up_call_nobody_reacts_to_rings_out_as_no_answer(
    follow_up_app: tuple[str, Flask], cli_state: CliState
) -> None:
    server_url, app = follow_up_app
    read_end, write_end = os.pipe()
    keyboard = os.fdopen(read_end, "rb")  # nothing is typed, and the input does not end either
    try:
        started = time.monotonic()
        result = answer_outbound(server_url, cli_state, "--ring-seconds", "0.5", input=keyboard)
        took = time.monotonic() - started
    finally:
        os.close(write_end)
        keyboard.close()

    assert result.exit_code == 0, result.output
    assert RING in result.output and "未接听 (no-answer after 0.5s)" in result.output
    assert took >= 0.5
    assert call_statuses(app) == ["initiated", "ringing", "no-answer"]


def test_ivr_call_answers_follow_up_calls_with_a_script(follow_up_app: tuple[str, Flask], cli_state: CliState) -> None:
    server_url, app = follow_up_app
    result = answer_outbound(server_url, cli_state, "--keys", "2", input="")

    assert result.exit_code == 0, result.output
    assert RING not in result.output  # a scripted resident answers at once
    assert "☎ 您按的是2。谢谢，再见。" in result.output
    assert call_statuses(app) == ["initiated", "ringing", "in-progress", "completed"]


@pytest.mark.parametrize(
    ("api_url", "port"),
    [
        ("http://127.0.0.1:5077", 5077),  # .env points the line and the dev phone at the same place
        ("http://localhost:5078/", 5078),
        ("https://api.twilio.com", DEFAULT_API_PORT),
        ("http://10.0.0.5:5077", DEFAULT_API_PORT),  # not this machine's: the dev phone listens on 127.0.0.1
    ],
)
def test_the_dev_phone_listens_where_ivr_twilio_api_url_points(cli_state: CliState, api_url: str, port: int) -> None:
    assert outbound_api_port(cli_state.settings.replace(twilio_api_url=api_url.rstrip("/"))) == port
