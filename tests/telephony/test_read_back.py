"""Transcription on the line: the message becomes text on the ticket and is read back before confirming
(E4). The real Vosk engine runs with the Korean model from PyPI (no Chinese model is on a registry)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from ivr.devphone.callers import Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.models import Recording
from ivr.speech.read_back import spoken_numbers
from tests.factories import FIXTURES, HELLO_WAV, dev_phone, speech_line, ticket_for

KOREAN_SPEECH = FIXTURES / "speech" / "ko_8k.wav"


@pytest.fixture
def speech_app(settings, recording_server):
    """The app with the real engine configured (IVR_VOSK_MODEL = the Korean model's folder)."""
    with speech_line(settings, retry_base_seconds=0.05) as app:
        yield app


def real_time_phone(app, settings, recording_server) -> TwilioEmulator:
    return dev_phone(app, settings, recording_server, real_pauses_up_to=2)


@pytest.mark.slow
def test_the_message_is_transcribed_and_read_back_before_confirming(
    speech_app, settings, recording_server, database, api_token
):
    phone = real_time_phone(speech_app, settings, recording_server)
    result = phone.call(["1", "3*2*501#", "1", Message(KOREAN_SPEECH), "1"]).raise_for_errors()
    transcript = result.transcript()
    assert "请稍等,正在为您记录" in transcript
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.text, result.describe()
    # What the caller heard read back is what is on the ticket, before the goodbye.
    read_back = next(text for text in result.said if "尾号" in text)
    assert f"您反映的问题是:{spoken_numbers(ticket.text)}" in read_back
    assert result.said.index(read_back) < next(i for i, t in enumerate(result.said) if "再见" in t)
    # Korean tokens keep their spaces; Chinese ones would be joined.
    assert " " in ticket.text

    with speech_app.test_client() as client:
        body = client.get(f"/api/tickets/{ticket.id}", headers={"Authorization": f"Bearer {api_token}"}).json
    assert body["transcript"] == ticket.text
    [recording] = body["recordings"]
    [channel] = recording["transcripts"]
    assert (channel["text"], channel["corrected_text"]) == (ticket.text, None)  # the machine's, uncorrected
    words = channel["words"]
    assert words and all(0 <= w["start"] <= w["end"] <= recording["duration"] + 0.1 for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)


@pytest.mark.slow
def test_a_transfer_recording_is_transcribed_per_channel(speech_app, settings, recording_server, database):
    from ivr.devphone.callers import DialOutcome

    phone = real_time_phone(speech_app, settings, recording_server)
    dual = FIXTURES / "speech" / "ko_dual_8k.wav"
    result = phone.call(["0", DialOutcome("completed", recording_wav=dual)]).raise_for_errors()
    queue = speech_app.extensions["ivr.queue"]
    assert queue.wait_idle(timeout=60)
    with database.session() as session:
        recording = session.scalars(select(Recording)).one()
        assert recording.call.call_sid == result.call_sid
        assert [t.channel for t in recording.transcripts] == [0, 1]


def test_without_a_model_the_line_reads_back_at_once_and_flags_the_message(phone, database, worker):
    result = phone.call(["2", "3*2*501#", "1", Message(HELLO_WAV), "1"]).raise_for_errors()
    assert "请稍等,正在为您记录" not in result.transcript()
    assert "您的留言已录音保存" in result.transcript()
    assert worker.wait_idle(timeout=20)
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.text is None
    [recording] = ticket.recordings
    assert recording.needs_manual_transcription
    assert "ivr models fetch" in (recording.transcription_error or "")


def test_the_wait_for_a_transcript_is_bounded(speech_app, settings, recording_server, database, declare_job):
    """Transcription that never finishes: after a few polls the line reads back without the text."""
    from ivr.telephony.message import MAX_POLLS

    transcribing, call_over = threading.Event(), threading.Event()

    def never_finishes(context, recording_id):  # not while the caller is on the line, at least
        transcribing.set()
        call_over.wait(timeout=60)

    declare_job("transcribe_recording", never_finishes, replacing=True)
    phone = dev_phone(speech_app, settings, recording_server)
    try:
        result = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "1"]).raise_for_errors()
        assert transcribing.wait(timeout=20), "the stand-in transcription never ran"
    finally:
        call_over.set()
    polls = [r for r in result.requests if "/twilio/read-back" in r.url]
    assert len(polls) == MAX_POLLS + 1  # it waited for the text, then stopped waiting
    assert "您的留言已录音保存" in result.transcript() and "您反映的问题是" not in result.transcript()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.confirmed


def test_healthz_says_whether_messages_are_being_transcribed(client, settings):
    missing = client.get("/healthz").json["speech_model"]
    assert missing.startswith("missing:") and "not transcribed" in missing


@pytest.mark.slow
def test_healthz_names_the_installed_model(speech_app):
    with speech_app.test_client() as client:
        assert client.get("/healthz").json["speech_model"].startswith(("installed", "loaded"))
