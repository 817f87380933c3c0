"""The media WebSocket (/twilio/media) on a real server: the handshake is signature-checked before any audio
is read, Twilio's Media Streams messages feed a live take, and streams that cannot be used are closed."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Iterator

import pytest
import simple_websocket
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

from ivr import create_app
from ivr.devphone.media_stream import mulaw_frames
from ivr.telephony.media import POLICY_VIOLATION, TRY_AGAIN_LATER, live_pool, media_stream_url
from tests.factories import FIXTURES, call_params, korean_model_path, signed_post

CALL_SID = "CA" + "1" * 32


@pytest.fixture
def live_app(settings):
    app = create_app(settings.replace(speech_model=str(korean_model_path()), live_streams=1))
    live_pool(app).warm_up()  # as `ivr serve` does at start
    yield app
    live_pool(app).close()
    app.extensions["ivr.database"].dispose()


@pytest.fixture
def server(live_app) -> Iterator[str]:
    """The app on a real threaded HTTP server (WebSockets need a socket); yields host:port."""
    served = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{served.server_port}"
    served.shutdown()
    thread.join(timeout=5)


def signature(settings, url: str) -> str:
    return RequestValidator(settings.twilio_auth_token).compute_signature(url, {})


def handshake_status(server: str, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection(server, timeout=5)
    connection.request(
        "GET",
        "/twilio/media",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
            "Sec-WebSocket-Version": "13",
            **headers,
        },
    )
    status = connection.getresponse().status
    connection.close()
    return status


def connect(server: str, settings) -> simple_websocket.Client:
    url = media_stream_url(settings.public_url)
    headers = {"X-Twilio-Signature": signature(settings, url)}
    return simple_websocket.Client(f"ws://{server}/twilio/media", headers=headers)


def send(ws, event: str, body: dict | None = None, sequence: list[int] = [0]) -> None:  # noqa: B006
    sequence[0] += 1
    message = {"event": event, "sequenceNumber": str(sequence[0]), "streamSid": "MZ" + "0" * 32}
    if body is not None:
        message[event] = body
    ws.send(json.dumps(message))


def start(ws, settings, *, call_sid: str = CALL_SID, take: str = "1", account: str | None = None) -> None:
    ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    send(
        ws,
        "start",
        {
            "accountSid": account or settings.twilio_account_sid,
            "streamSid": "MZ" + "0" * 32,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": {"callSid": call_sid, "take": take},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    )


def stream_audio(ws, frames: list[bytes], speed: float = 1.0) -> None:
    began = time.monotonic()
    for index, frame in enumerate(frames):
        time.sleep(max(0.0, began + index * 0.02 / speed - time.monotonic()))
        send(ws, "media", {"track": "inbound", "chunk": str(index + 1), "timestamp": str(index * 20),
                           "payload": base64.b64encode(frame).decode()})  # fmt: skip


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def closed_with(ws) -> int | None:
    try:
        while True:
            ws.receive(timeout=5)
    except simple_websocket.ConnectionClosed as closed:
        return closed.reason


def test_the_stream_url_is_the_webhooks_origin_as_a_websocket(settings):
    assert media_stream_url("https://ivr.example.test") == "wss://ivr.example.test/twilio/media"
    assert media_stream_url("http://127.0.0.1:5000") == "ws://127.0.0.1:5000/twilio/media"


def test_unsigned_and_wrongly_signed_handshakes_are_refused_before_any_audio(server, settings, live_app):
    url = media_stream_url(settings.public_url)
    assert handshake_status(server, {}) == 403
    assert handshake_status(server, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}) == 403
    # Signed for the https:// webhook origin, not the wss:// URL the TwiML gave Twilio.
    webhook_origin = signature(settings, settings.public_url + "/twilio/media")
    assert handshake_status(server, {"X-Twilio-Signature": webhook_origin}) == 403
    assert handshake_status(server, {"X-Twilio-Signature": signature(settings, url)}) == 101
    assert live_pool(live_app).counts.opened == 0


def test_a_signed_stream_feeds_a_live_take_that_the_record_action_finishes(server, settings, live_app):
    ws = connect(server, settings)
    start(ws, settings)
    frames = mulaw_frames((FIXTURES / "speech" / "ko_8k.wav").read_bytes())
    stream_audio(ws, frames)
    pool = live_pool(live_app)
    assert wait_for(lambda: (take := pool.find((CALL_SID, 1))) is not None and take.seconds_received >= 3.3)
    heard = pool.find((CALL_SID, 1)).finish()
    assert heard is not None and heard.raw_text and heard.duration == pytest.approx(len(frames) * 0.02, abs=0.05)
    stream_audio(ws, frames[:10])  # the caller listening to the read-back: dropped, the stream stays up
    send(ws, "stop", {"accountSid": settings.twilio_account_sid, "callSid": CALL_SID})
    assert closed_with(ws) == 1000


def test_a_stream_beyond_the_pool_is_declined_and_the_first_goes_on(server, settings, live_app):
    first = connect(server, settings)
    start(first, settings)
    pool = live_pool(live_app)
    assert wait_for(lambda: pool.find((CALL_SID, 1)) is not None)
    second = connect(server, settings)
    start(second, settings, call_sid="CA" + "2" * 32)
    assert closed_with(second) == TRY_AGAIN_LATER
    assert pool.counts.declined == 1 and pool.find((CALL_SID, 1)).state == "live"
    first.close()
    assert wait_for(lambda: pool.find((CALL_SID, 1)).state != "live")  # the socket closing ends the take


@pytest.mark.parametrize(
    "change",
    [
        {"account": "AC" + "9" * 32},  # another account's stream
        {"take": "../1"},  # not a take number
    ],
)
def test_a_stream_whose_start_does_not_fit_is_closed(server, settings, live_app, change):
    ws = connect(server, settings)
    start(ws, settings, **change)
    assert closed_with(ws) == POLICY_VIOLATION
    assert live_pool(live_app).counts.opened == 0


def test_junk_instead_of_json_closes_the_stream(server, settings, live_app):
    ws = connect(server, settings)
    ws.send("not json")
    assert closed_with(ws) == POLICY_VIOLATION


def asked_for_a_message(live_app, settings) -> str:
    """Webhooks up to the <Record> of take 1 (a repair for 3-2-501); returns that answer's TwiML."""
    client = live_app.test_client()
    for path, digits in (("/twilio/voice", None), ("/twilio/menu", "1"), ("/twilio/room", "3*2*501#")):
        signed_post(client, settings, path, call_params(CALL_SID, **({"Digits": digits} if digits else {})))
    return signed_post(client, settings, "/twilio/room/confirm", call_params(CALL_SID, Digits="1")).get_data(
        as_text=True
    )


def record_action(live_app, settings, seconds: int) -> str:
    params = call_params(
        CALL_SID,
        RecordingSid="RE" + "1" * 32,
        RecordingUrl="http://127.0.0.1:9/recording",
        RecordingDuration=str(seconds),
        Digits="#",
    )
    return signed_post(live_app.test_client(), settings, "/twilio/recorded", params).get_data(as_text=True)


def test_the_record_action_reads_back_at_once_what_the_stream_heard(server, settings, live_app):
    twiml = asked_for_a_message(live_app, settings)
    assert '<Stream name="take-1" track="inbound_track" url="wss://ivr.example.test/twilio/media">' in twiml
    assert f'<Parameter name="callSid" value="{CALL_SID}" /><Parameter name="take" value="1" />' in twiml
    assert twiml.index("<Start>") < twiml.index("<Record ")
    ws = connect(server, settings)
    start(ws, settings)
    frames = mulaw_frames((FIXTURES / "speech" / "ko_8k.wav").read_bytes())
    stream_audio(ws, frames)
    pool = live_pool(live_app)
    assert wait_for(lambda: pool.find((CALL_SID, 1)).seconds_received >= 3.3)
    answer = record_action(live_app, settings, seconds=3)
    assert answer.index('<Stop><Stream name="take-1" /></Stop>') < answer.index("<Gather")
    assert "请稍等" not in answer and "您反映的问题是" in answer
    ws.close()


def test_a_stream_that_dropped_mid_take_leaves_the_read_back_to_the_download(server, settings, live_app):
    asked_for_a_message(live_app, settings)
    ws = connect(server, settings)
    start(ws, settings)
    frames = mulaw_frames((FIXTURES / "speech" / "ko_8k.wav").read_bytes())
    stream_audio(ws, frames[: len(frames) // 3])
    ws.close()  # the stream drops a third of the way in
    pool = live_pool(live_app)
    assert wait_for(lambda: pool.find((CALL_SID, 1)).state != "live")
    answer = record_action(live_app, settings, seconds=3)
    # Only part of the take was heard live: hold and wait for the recording's transcript, as without a stream.
    assert "请稍等,正在为您记录" in answer and "您反映的问题是" not in answer
