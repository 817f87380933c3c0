"""Fixtures for driving the console in Debian's Chromium: one browser per session, a live server per test
(the app on the test database behind a real HTTP socket, with its embedded job worker), and a ticket opened
by an emulated call whose message is downloaded and, when the Korean model is installed, transcribed."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from ivr import create_app
from ivr.db import Database
from ivr.devphone.callers import Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.recording_server import RecordingServer
from ivr.devphone.transport import HttpTransport
from ivr.models import Recording, RecordingState, Ticket, Transcript
from tests.factories import FIXTURES, korean_model_dir, ticket_for

CHROMIUM = Path("/usr/bin/chromium")
KOREAN_SPEECH = FIXTURES / "speech" / "ko_8k.wav"

# Flags for this machine's closed network (no background connections, no first-run), audio that may play
# without a user gesture and makes no sound. Playwright adds --headless, --no-sandbox and a fresh profile.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
]

# Timed words for when no speech model is installed (3.3 s of audio in ko_8k.wav).
FALLBACK_WORDS = [
    {"word": "楼上", "start": 0.2, "end": 0.9, "conf": 0.95, "low_confidence": False},
    {"word": "漏水", "start": 1.0, "end": 1.8, "conf": 0.91, "low_confidence": False},
    {"word": "了", "start": 1.9, "end": 2.6, "conf": 0.55, "low_confidence": True},
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Debian's Chromium under Playwright, launched once per module (each test opens its own context).

    Module scope, not session: Playwright's event loop is gone before tests in other modules run.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (./scripts/test does, as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class LiveConsole:
    """The app served over HTTP on a loopback port."""

    url: str
    app: Flask
    speech_model: Path | None

    @property
    def database(self) -> Database:
        return self.app.extensions["ivr.database"]


@pytest.fixture
def live(settings) -> Iterator[LiveConsole]:
    """The app on a real socket (threaded, as browsers open several connections) with its embedded worker.

    The public URL is the server's own http:// address, so session cookies are not Secure (Chromium
    would drop them over http) and the emulated call's webhooks and callbacks reach this server.
    """
    holder: dict[str, Flask] = {}
    # Bind first to learn the port; the app is created for that address and put behind the socket.
    server = make_server(
        "127.0.0.1", 0, lambda environ, start_response: holder["app"](environ, start_response), threaded=True
    )
    url = f"http://127.0.0.1:{server.server_port}"
    model = korean_model_dir()
    app = create_app(
        settings.replace(public_url=url, speech_model=str(model) if model else None), retry_base_seconds=0.05
    )
    holder["app"] = app
    queue = app.extensions["ivr.queue"]
    queue.start_embedded(workers=2)
    thread = threading.Thread(target=server.serve_forever, name="live-console", daemon=True)
    thread.start()
    try:
        yield LiveConsole(url, app, model)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        queue.stop_embedded()
        app.extensions["ivr.database"].dispose()


@pytest.fixture
def context(chromium) -> Iterator[object]:
    """A fresh browser context per test: no cookies, no cache, Chinese locale and Beijing time."""
    context = chromium.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(10_000)
    yield context
    context.close()


@dataclass(frozen=True)
class CalledTicket:
    id: int
    number: str
    room: str
    recording_sid: str
    words: list[dict]
    transcribed_by_model: bool


def call_in_a_complaint(live: LiveConsole, settings, recording_server: RecordingServer) -> CalledTicket:
    """A complaint (menu 2) from room 3-2-501 with a spoken message, through the live server's webhooks.

    Waits until the recording is downloaded (and transcribed, with the model); without the model the
    timed words are inserted as the transcription job would have stored them.
    """
    phone = TwilioEmulator(
        HttpTransport(live.url, live.url),
        live.url,
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        recording_server,
        real_pauses_up_to=2,
    )
    result = phone.call(["2", "3*2*501#", "1", Message(KOREAN_SPEECH), "1"]).raise_for_errors()
    assert live.app.extensions["ivr.queue"].wait_idle(timeout=60), "the job queue did not become idle"
    ticket = ticket_for(live.database, result.call_sid)
    assert ticket is not None, result.describe()
    [recording] = ticket.recordings
    assert recording.state == RecordingState.STORED, recording.error
    with live.database.session() as session:
        transcript = session.scalars(select(Transcript).where(Transcript.recording_id == recording.id)).first()
        if transcript is None or not transcript.words:
            assert live.speech_model is None, "the model is installed but the message was not transcribed"
            session.add(
                Transcript(
                    recording_id=recording.id,
                    channel=0,
                    text="楼上漏水了",
                    raw_text="楼上 漏水 了",
                    words=FALLBACK_WORDS,
                    duration=3.31,
                    model="inserted-by-test",
                )
            )
            words = FALLBACK_WORDS
        else:
            words = list(transcript.words)
    return CalledTicket(
        ticket.id,
        ticket.number,
        ticket.room or "",
        recording.recording_sid,
        words,
        transcribed_by_model=live.speech_model is not None,
    )


def store_recording(database: Database, settings, ticket_id: int, sid: str, wav: Path) -> None:
    """A downloaded message on `ticket_id`, as the download job leaves it (file in IVR_RECORDINGS_DIR)."""
    relative = Path("test") / f"{sid}.wav"
    target = settings.recordings_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wav, target)
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        session.add(
            Recording(
                recording_sid=sid,
                call_id=ticket.call_id,
                ticket_id=ticket_id,
                source="message",
                state=RecordingState.STORED,
                channels=1,
                duration=3.31,
                size=target.stat().st_size,
                path=str(relative),
                content_type="audio/wav",
            )
        )
