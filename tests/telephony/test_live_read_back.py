"""The live path end to end: `ivr serve` (gunicorn) with the real Korean model, the dev phone streaming the
message over the signed media WebSocket in real time as Twilio does, the read-back the moment # is pressed."""

from __future__ import annotations

import time

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ivr.devphone.callers import Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.transport import HttpTransport
from ivr.models import Recording
from ivr.speech.read_back import spoken_numbers
from tests.factories import FIXTURES, korean_model_path
from tests.faults import ServeProcess, wait_until

KOREAN_SPEECH = FIXTURES / "speech" / "ko_8k.wav"
HOLD = "请稍等,正在为您记录"


def takes(database, call_sid: str) -> list[Recording]:
    with database.session(read_only=True) as session:
        rows = session.scalars(
            select(Recording)
            .where(Recording.call.has(call_sid=call_sid))
            .options(selectinload(Recording.transcripts), selectinload(Recording.live_transcript))
        )
        return list(rows)


def served_phone(server, settings, recording_server, **options) -> TwilioEmulator:
    return TwilioEmulator(
        HttpTransport(server.url, server.url),
        server.url,
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        recording_server,
        real_pauses_up_to=2,
        **options,
    )


@pytest.fixture
def live_environ(settings_environ):
    return {**settings_environ, "IVR_VOSK_MODEL": str(korean_model_path()), "IVR_READ_BACK_MIN_CONFIDENCE": "0"}


@pytest.mark.slow
def test_the_read_back_carries_the_live_text_the_moment_the_caller_presses_hash(
    live_environ, settings, database, recording_server, tmp_path, api_token
):
    with ServeProcess(live_environ, tmp_path / "serve.log") as server:
        time.sleep(2)  # the model loads in the background at start-up
        phone = served_phone(server, settings, recording_server, stream_speed=1.0)
        result = phone.call(["1", "3*2*501#", "1", Message(KOREAN_SPEECH), "1"]).raise_for_errors()
        recorded = next(exchange for exchange in result.requests if "/twilio/recorded" in exchange.url)
        [stream] = result.streams
        assert stream.ended == "stopped" and stream.frames_sent >= 160, stream
        assert stream.parameters == {"callSid": result.call_sid, "take": "1"}
        # No hold phrase, no polling: the Record action's answer is the read-back with the caller's words.
        assert HOLD not in result.transcript()
        assert recorded.seconds < 1.0, recorded
        read_back = next(text for text in result.said if "尾号" in text)
        [take] = takes(database, result.call_sid)
        assert take.live_transcript is not None and take.live_transcript.text
        assert f"您反映的问题是:{spoken_numbers(take.live_transcript.text)}" in read_back
        # The downloaded recording is still transcribed and stays the take's authoritative text.
        assert wait_until(lambda: bool(takes(database, result.call_sid)[0].transcripts), timeout=60)
        [take] = takes(database, result.call_sid)
        assert take.transcripts[0].text and take.live_transcript.text
        # Both are kept, and staff tools say which is which.
        answer = requests.get(
            f"{server.url}/api/tickets/{take.ticket_id}", headers={"Authorization": f"Bearer {api_token}"}, timeout=5
        ).json()
        [recording] = answer["recordings"]
        assert recording["transcripts"][0]["text"] == take.transcripts[0].text
        assert recording["live_transcript"]["text"] == take.live_transcript.text
        live = requests.get(f"{server.url}/healthz", timeout=5).json()["live_transcription"]
        assert live["on"] and (live["opened"], live["finished"], live["declined"], live["active"]) == (1, 1, 0, 0)


@pytest.mark.slow
def test_with_live_transcription_off_the_line_holds_and_polls_as_before(
    live_environ, settings, database, recording_server, tmp_path
):
    with ServeProcess({**live_environ, "IVR_LIVE_STREAMS": "0"}, tmp_path / "serve.log") as server:
        phone = served_phone(server, settings, recording_server, stream_speed=1.0)
        result = phone.call(["1", "3*2*501#", "1", Message(KOREAN_SPEECH), "1"]).raise_for_errors()
        assert result.streams == []
        assert HOLD in result.transcript()
        [take] = takes(database, result.call_sid)
        assert take.live_transcript is None
