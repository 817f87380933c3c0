"""The dev phone's Media Streams against a throwaway line of our own: a live Flask server that answers
TwiML and takes the media WebSocket (flask-sock), checks every signature and records what arrives. These
tests pin down Twilio's side as emulated: the messages, their order, the audio, the pacing, and that a
failing stream changes nothing for the call."""

from __future__ import annotations

import audioop
import base64
import itertools
import json
import math
import re
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, Response, abort, g, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.serving import make_server

from ivr.cli import main
from ivr.cli_state import CliState
from ivr.config import load_settings
from ivr.devphone import FlaskClientTransport, HttpTransport, Message, RecordingServer, TwilioEmulator
from ivr.devphone.media_stream import mulaw_frames
from ivr.devphone.net import free_port

PUBLIC_URL = "https://ivr.example.test"
STREAM_URL = "wss://ivr.example.test/twilio/media"
ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "media-stream-test-auth-token"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KO = FIXTURES / "speech" / "ko_8k.wav"  # 3.309 s, 8 kHz mono: 165.45 frames of 20 ms
HELLO = FIXTURES / "audio" / "hello.wav"  # 2.0 s, 8 kHz mono: 100 frames
THANKS = "留言已收到，谢谢。"
STREAM_SID = re.compile(r"^MZ[0-9a-f]{32}$")

Handler = Callable[[dict[str, str]], VoiceResponse]


# --- the throwaway line --------------------------------------------------------------------------------


@dataclass
class MediaConnection:
    """One WebSocket handshake to /twilio/media and the messages that came over it."""

    url: str
    headers: dict[str, str]
    signature_ok: bool
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (arrival, message)
    done: threading.Event = field(default_factory=threading.Event)

    def events(self) -> list[str]:
        return [message["event"] for _, message in self.messages]

    def media(self) -> list[dict[str, Any]]:
        return [message for _, message in self.messages if message["event"] == "media"]

    def name(self) -> str:
        starts = [message for _, message in self.messages if message["event"] == "start"]
        return str(starts[0]["start"]["customParameters"].get("stream", "")) if starts else ""


@dataclass
class Line:
    """What the line answers and what it saw. `refuse_streams` answers every handshake 403; `close_after`
    closes each stream's socket after that many messages."""

    server_url: str = ""
    handlers: dict[str, Handler] = field(default_factory=dict)
    connections: list[MediaConnection] = field(default_factory=list)
    webhooks: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    refuse_streams: bool = False
    close_after: int | None = None

    def wait_done(self, count: int = 1, timeout: float = 5.0) -> list[MediaConnection]:
        """The accepted connections, once `count` of them have ended (the client closed or the server did)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            accepted = [c for c in self.connections if c.signature_ok and not self.refuse_streams]
            if len(accepted) >= count and all(c.done.is_set() for c in accepted):
                return accepted
            time.sleep(0.01)
        raise AssertionError(f"{count} stream(s) did not end in {timeout}s: {self.connections!r}")

    def paths(self) -> list[str]:
        return [path for path, _ in self.webhooks]


def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll `condition` until true or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def make_line_app(line: Line) -> Flask:
    """TwiML from `line.handlers` and the media WebSocket, refusing anything not signed with AUTH_TOKEN over
    the public URL (wss:// for the stream, as the TwiML wrote it)."""
    app = Flask("media_stream_test_line")
    sock = Sock(app)
    validator = RequestValidator(AUTH_TOKEN)

    @app.before_request
    def check_signature() -> None:
        query = request.query_string.decode()
        signature = request.headers.get("X-Twilio-Signature", "")
        if request.path == "/twilio/media":
            url = STREAM_URL + (f"?{query}" if query else "")
            connection = MediaConnection(url, dict(request.headers), validator.validate(url, {}, signature))
            line.connections.append(connection)
            if not connection.signature_ok or line.refuse_streams:
                abort(403)  # before the handshake is accepted, as the real endpoint must
            g.connection = connection
            return
        url = PUBLIC_URL + request.path + (f"?{query}" if query else "")
        if not validator.validate(url, request.form.to_dict(), signature):
            abort(403)

    @sock.route("/twilio/media")
    def media(ws: Any) -> None:
        connection: MediaConnection = g.connection
        try:
            while True:
                data = ws.receive(timeout=10)
                if data is None:
                    break
                connection.messages.append((time.monotonic(), json.loads(data)))
                if line.close_after is not None and len(connection.messages) >= line.close_after:
                    ws.close()
                    break
        except ConnectionClosed:
            pass
        finally:
            connection.done.set()

    @app.post("/<path:path>")
    def webhook(path: str) -> Any:
        form = {**request.args.to_dict(), **request.form.to_dict()}
        line.webhooks.append((request.path, form))
        handler = line.handlers.get(request.path)
        if handler is None:
            return "", 204
        return Response(str(handler(form)), mimetype="text/xml")

    return app


@pytest.fixture
def line() -> Iterator[Line]:
    line = Line()
    server = make_server("127.0.0.1", 0, make_line_app(line), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    line.server_url = f"http://127.0.0.1:{server.server_port}"
    yield line
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def recordings() -> Iterator[RecordingServer]:
    with RecordingServer(ACCOUNT_SID, AUTH_TOKEN) as server:
        yield server


Phone = Callable[..., TwilioEmulator]


@pytest.fixture
def phone(line: Line, recordings: RecordingServer) -> Phone:
    """Factory: an emulator calling the line over HTTP (streams as fast as possible unless told)."""

    def build(stream_speed: float = math.inf, **options: Any) -> TwilioEmulator:
        transport = options.pop("transport", None) or HttpTransport(line.server_url, PUBLIC_URL)
        return TwilioEmulator(
            transport, PUBLIC_URL, ACCOUNT_SID, AUTH_TOKEN, recordings, stream_speed=stream_speed, **options
        )

    return build


def start_stream(response: VoiceResponse, name: str | None, url: str = STREAM_URL, **parameters: str) -> None:
    start = response.start()
    stream = start.stream(url=url, name=name, track="inbound_track")
    for key, value in parameters.items():
        stream.parameter(name=key, value=value)


def stop_stream(response: VoiceResponse, name: str | None) -> None:
    response.stop().stream(name=name)


def take_handlers(after_record: Callable[[VoiceResponse, dict[str, str]], None] | None = None) -> dict[str, Handler]:
    """The line's message step as the server answers it: <Say>, <Start><Stream name="take-3"> with the
    call and take as <Parameter>s, <Record>, <Redirect>; the Record action stops the stream and thanks."""

    def voice(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.say("请在提示音后留言，按井号键结束。", language="cmn-CN")
        start_stream(response, "take-3", callSid=form["CallSid"], take="3")
        response.record(action="/twilio/recorded?take=3", max_length=60, finish_on_key="#", timeout=2)
        response.redirect("/twilio/record/empty")
        return response

    def recorded(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        if after_record is not None:
            after_record(response, form)
        else:
            stop_stream(response, "take-3")
        response.say(THANKS, language="cmn-CN")
        response.hangup()
        return response

    return {"/twilio/voice": voice, "/twilio/recorded": recorded}


def mulaw_of(path: Path) -> bytes:
    """The file's 16-bit samples as μ-law, padded with μ-law silence to whole 160-byte frames."""
    with wave.open(str(path)) as reader:
        mulaw = audioop.lin2ulaw(reader.readframes(reader.getnframes()), 2)
    return mulaw + b"\xff" * (-len(mulaw) % 160)


def frames_in(path: Path) -> int:
    with wave.open(str(path)) as reader:
        return math.ceil(reader.getnframes() / 160)


# --- messages, audio and signature ----------------------------------------------------------------------


def test_a_stream_sends_twilio_media_stream_messages_in_order_with_the_callers_audio(line: Line, phone: Phone) -> None:
    line.handlers = take_handlers()
    result = phone().call([Message(KO)])

    result.raise_for_errors()
    [connection] = line.wait_done()
    messages = [message for _, message in connection.messages]
    frames = frames_in(KO)
    assert frames == 166
    assert connection.events() == ["connected", "start"] + ["media"] * frames + ["stop"]
    assert messages[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    stream_sid = messages[1]["streamSid"]
    assert STREAM_SID.match(stream_sid)
    assert messages[1] == {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": ACCOUNT_SID,
            "streamSid": stream_sid,
            "callSid": result.call_sid,
            "tracks": ["inbound"],
            "customParameters": {"callSid": result.call_sid, "take": "3"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": stream_sid,
    }
    media = connection.media()
    assert [m["sequenceNumber"] for m in media] == [str(n) for n in range(2, frames + 2)]
    assert [m["media"]["chunk"] for m in media] == [str(n) for n in range(1, frames + 1)]
    timestamps = [int(m["media"]["timestamp"]) for m in media]
    assert all(isinstance(m["media"]["timestamp"], str) for m in media)
    assert [b - a for a, b in itertools.pairwise(timestamps)] == [20] * (frames - 1)
    assert all(m["media"]["track"] == "inbound" and m["streamSid"] == stream_sid for m in media)
    payloads = [base64.b64decode(m["media"]["payload"]) for m in media]
    assert {len(p) for p in payloads} == {160}
    assert b"".join(payloads) == mulaw_of(KO)
    assert messages[-1] == {
        "event": "stop",
        "sequenceNumber": str(frames + 2),
        "stop": {"accountSid": ACCOUNT_SID, "callSid": result.call_sid},
        "streamSid": stream_sid,
    }
    stream = result.stream("take-3")
    assert (stream.stream_sid, stream.frames_sent, stream.ended, stream.stop_sent) == (
        stream_sid,
        frames,
        "stopped",
        True,
    )
    assert stream.parameters == {"callSid": result.call_sid, "take": "3"}
    assert stream.url == STREAM_URL
    assert stream.connected_to == line.server_url.replace("http://", "ws://") + "/twilio/media"
    assert result.said[-1] == THANKS  # the TwiML carried on after <Start> and after <Stop>


def test_the_handshake_is_signed_over_the_stream_url_as_written(line: Line, phone: Phone) -> None:
    line.handlers = take_handlers()
    phone().call([Message(HELLO)]).raise_for_errors()

    [connection] = line.wait_done()
    assert connection.signature_ok
    assert connection.headers["X-Twilio-Signature"] == RequestValidator(AUTH_TOKEN).compute_signature(STREAM_URL, {})
    assert connection.headers["X-Forwarded-Proto"] == "https"
    assert connection.headers["X-Forwarded-Host"] == "ivr.example.test"


def test_mulaw_frames_convert_any_wav_to_8khz_mono(tmp_path: Path) -> None:
    path = tmp_path / "stereo_16k.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(b"\x00\x10\x00\x10" * 16000)  # 1 s of a constant level on both channels
    frames = mulaw_frames(path.read_bytes())

    assert len(frames) == 50
    assert set(b"".join(frames[1:])) == set(audioop.lin2ulaw(b"\x00\x10", 2))


# --- timing ----------------------------------------------------------------------------------------------


def test_frames_are_paced_in_real_time_divided_by_the_speed(line: Line, phone: Phone) -> None:
    line.handlers = take_handlers()
    phone(stream_speed=10.0).call([Message(HELLO)]).raise_for_errors()

    [connection] = line.wait_done()
    arrivals = [at for at, message in connection.messages if message["event"] == "media"]
    assert len(arrivals) == 100
    # 2 s of audio at 10×: the last frame goes 0.18 s after the first (loose: a loaded machine lags).
    assert 0.12 < arrivals[-1] - arrivals[0] < 1.0


def test_the_record_action_comes_after_the_last_frame(line: Line, phone: Phone) -> None:
    seen_by_action: list[int] = []

    def after_record(response: VoiceResponse, form: dict[str, str]) -> None:
        # Whatever has been sent before this request arrives within moments; frames sent after it never
        # would (the phone waits for this answer).
        connection = line.connections[0]
        wait_for(lambda: len(connection.media()) >= frames_in(KO))
        seen_by_action.append(len(connection.media()))
        stop_stream(response, "take-3")

    line.handlers = take_handlers(after_record)
    phone(stream_speed=20.0).call([Message(KO)]).raise_for_errors()

    assert seen_by_action == [frames_in(KO)]
    assert line.paths() == ["/twilio/voice", "/twilio/recorded", "/twilio/status"]


def test_without_an_open_stream_record_keeps_virtual_time(line: Line, phone: Phone) -> None:
    line.refuse_streams = True
    line.handlers = take_handlers()
    began = time.monotonic()
    result = phone(stream_speed=1.0).call([Message(HELLO)])

    result.raise_for_errors()
    assert time.monotonic() - began < 1.5  # a 2 s message, at real-time speed, but nothing to stream to
    assert result.duration >= 2


# --- streams that fail change nothing ---------------------------------------------------------------------


def test_a_refused_handshake_is_recorded_and_the_call_goes_on(line: Line, phone: Phone) -> None:
    line.refuse_streams = True
    line.handlers = take_handlers()
    result = phone().call([Message(HELLO)])

    result.raise_for_errors()
    stream = result.stream("take-3")
    assert (stream.ended, stream.http_status, stream.frames_sent, stream.stop_sent) == ("refused", 403, 0, False)
    assert "/twilio/recorded" in line.paths() and result.said[-1] == THANKS
    assert result.warnings == []  # <Stop> names a stream that was started, though it never connected


def test_a_server_closing_the_socket_is_recorded_and_the_call_goes_on(line: Line, phone: Phone) -> None:
    line.close_after = 2  # connected, start
    line.handlers = take_handlers()
    # Paced, so the server's close frame is back long before the last frame would be written.
    result = phone(stream_speed=20.0).call([Message(KO)])

    result.raise_for_errors()
    [connection] = line.wait_done()
    assert connection.events() == ["connected", "start"]
    stream = result.stream("take-3")
    assert stream.ended == "closed-by-server" and "close code 1000" in stream.detail
    assert stream.frames_sent < frames_in(KO) and not stream.stop_sent
    assert "/twilio/recorded" in line.paths() and result.said[-1] == THANKS


def test_a_transport_without_websockets_fails_to_connect_and_the_call_goes_on(
    line: Line, phone: Phone, recordings: RecordingServer
) -> None:
    handlers = take_handlers()
    app = Flask("flask_client_line")

    @app.post("/<path:path>")
    def webhook(path: str) -> Any:
        form = {**request.args.to_dict(), **request.form.to_dict()}
        return Response(str(handlers[request.path](form)), mimetype="text/xml") if request.path in handlers else ""

    result = phone(transport=FlaskClientTransport(app, PUBLIC_URL)).call([Message(HELLO)])

    result.raise_for_errors()
    stream = result.stream("take-3")
    assert stream.ended == "failed-to-connect" and "cannot open WebSockets" in stream.detail
    assert result.said[-1] == THANKS


def test_an_unreachable_stream_fails_to_connect(line: Line, phone: Phone) -> None:
    unreachable = f"ws://127.0.0.1:{free_port()}/media"

    def voice(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        start_stream(response, "elsewhere", url=unreachable)
        response.say(THANKS, language="cmn-CN")
        return response

    line.handlers = {"/twilio/voice": voice}
    result = phone().call([])

    result.raise_for_errors()
    assert result.stream("elsewhere").ended == "failed-to-connect"
    assert result.said == [THANKS]


# --- stopping ----------------------------------------------------------------------------------------------


def test_stop_by_name_stops_that_stream_only(line: Line, phone: Phone) -> None:
    seen_after_stop: list[tuple[bool, bool]] = []

    def voice(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        start_stream(response, "a", stream="a")
        start_stream(response, "b", stream="b")
        response.record(action="/twilio/recorded", finish_on_key="#")
        return response

    def recorded(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        stop_stream(response, "a")
        response.redirect("/twilio/after")
        return response

    def after(form: dict[str, str]) -> VoiceResponse:
        by_name = {connection.name(): connection for connection in line.connections}
        a_stopped = wait_for(lambda: "stop" in by_name["a"].events())
        seen_after_stop.append((a_stopped, "stop" in by_name["b"].events()))
        response = VoiceResponse()
        response.say(THANKS, language="cmn-CN")
        return response

    line.handlers = {"/twilio/voice": voice, "/twilio/recorded": recorded, "/twilio/after": after}
    result = phone().call([Message(HELLO)])

    result.raise_for_errors()
    assert seen_after_stop == [(True, False)]
    connections = line.wait_done(2)
    assert sorted(c.events() for c in connections) == [["connected", "start"] + ["media"] * 100 + ["stop"]] * 2
    assert (result.stream("a").ended, result.stream("b").ended) == ("stopped", "call-ended")
    assert result.stream("a").parameters == {"stream": "a"}


def test_a_stop_naming_no_stream_stops_an_unnamed_stream(line: Line, phone: Phone) -> None:
    def voice(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        start_stream(response, None)
        response.record(action="/twilio/recorded", finish_on_key="#")
        return response

    def recorded(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        stop_stream(response, None)
        response.pause(length=1)
        return response

    line.handlers = {"/twilio/voice": voice, "/twilio/recorded": recorded}
    result = phone().call([Message(HELLO)])

    result.raise_for_errors()
    [connection] = line.wait_done()
    assert connection.events()[-1] == "stop"
    assert result.stream("").ended == "stopped"


def test_a_stop_naming_an_unknown_stream_is_a_warning(line: Line, phone: Phone) -> None:
    line.handlers = take_handlers(lambda response, form: stop_stream(response, "take-9"))
    result = phone().call([Message(HELLO)])

    assert result.warnings == ["<Stop><Stream name='take-9'>: no stream of that name was started"]
    assert result.stream("take-3").ended == "call-ended"


def test_the_end_of_the_call_stops_an_open_stream(line: Line, phone: Phone) -> None:
    line.handlers = take_handlers(lambda response, form: None)  # the action answers without <Stop>
    result = phone().call([Message(HELLO)])

    result.raise_for_errors()
    [connection] = line.wait_done()
    assert connection.events() == ["connected", "start"] + ["media"] * 100 + ["stop"]
    assert result.stream("take-3").ended == "call-ended" and result.stream("take-3").stop_sent


def test_a_caller_hanging_up_after_speaking_stops_the_stream_before_the_action(line: Line, phone: Phone) -> None:
    stopped_before_action: list[bool] = []

    def after_record(response: VoiceResponse, form: dict[str, str]) -> None:
        connection = line.connections[0]
        stopped_before_action.append(wait_for(lambda: "stop" in connection.events()))

    line.handlers = take_handlers(after_record)
    result = phone().call([Message(HELLO, finish="hangup")])

    result.raise_for_errors()
    assert stopped_before_action == [True]
    assert result.stream("take-3").ended == "call-ended" and result.ended_by == "caller"


def test_stream_status_callbacks_report_started_and_stopped(line: Line, phone: Phone) -> None:
    def voice(form: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.start().stream(url=STREAM_URL, name="take-3", status_callback="/twilio/stream-status")
        response.record(action="/twilio/recorded", finish_on_key="#")
        return response

    line.handlers = {"/twilio/voice": voice, "/twilio/recorded": take_handlers()["/twilio/recorded"]}
    result = phone().call([Message(HELLO)])

    result.raise_for_errors()
    events = [form for path, form in line.webhooks if path == "/twilio/stream-status"]
    assert [(e["StreamEvent"], e["StreamName"], e["StreamSid"]) for e in events] == [
        ("stream-started", "take-3", result.stream("take-3").stream_sid),
        ("stream-stopped", "take-3", result.stream("take-3").stream_sid),
    ]


# --- the transport and `ivr call` ------------------------------------------------------------------------


def test_http_transport_maps_the_public_websocket_url_to_the_server() -> None:
    https = HttpTransport("http://127.0.0.1:5000", "https://ivr.example.test")
    assert https.websocket_url("wss://ivr.example.test/twilio/media?x=1") == "ws://127.0.0.1:5000/twilio/media?x=1"
    assert https.websocket_url("wss://elsewhere.test/media") == "wss://elsewhere.test/media"
    http = HttpTransport("http://127.0.0.1:5001", "http://127.0.0.1:5000")
    assert http.websocket_url("ws://127.0.0.1:5000/twilio/media") == "ws://127.0.0.1:5001/twilio/media"


def test_ivr_call_streams_the_message_when_the_line_asks(line: Line, tmp_path: Path) -> None:
    line.handlers = take_handlers()
    settings = load_settings(
        {
            "IVR_ENV": "test",
            "IVR_INSTANCE_DIR": str(tmp_path / "instance"),
            "IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            "IVR_PUBLIC_URL": PUBLIC_URL,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "IVR_SECRET_KEY": "media-stream-test-secret-" + "x" * 32,
        }
    )
    args = ["call", "--server", line.server_url, "--message", str(KO), "--stream-speed", "max", "--linger", "0"]
    result = CliRunner().invoke(main, [*args, "--keys", "#"], obj=CliState(settings))

    assert result.exit_code == 0, result.output
    [connection] = line.wait_done()
    assert connection.events().count("media") == 166
    assert re.search(
        r"stream take-3 to ws://127\.0\.0\.1:\d+/twilio/media: 166 frames \(3\.32s of audio\), stopped", result.output
    )


def test_a_recording_that_times_out_streams_the_silence_before_the_action(line: Line, phone: Phone) -> None:
    line.handlers = take_handlers()  # <Record timeout="2">
    result = phone().call([Message(HELLO, finish="timeout")])

    result.raise_for_errors()
    [connection] = line.wait_done()
    payloads = [base64.b64decode(m["media"]["payload"]) for m in connection.media()]
    assert len(payloads) == 100 + 100  # 2 s spoken, then 2 s of silence until the timeout
    assert b"".join(payloads[100:]) == b"\xff" * 160 * 100
    assert result.stream("take-3").frames_sent == 200
