"""Downloads trust nothing they are told: crafted RecordingUrl and RecordingSid values and redirects never
make the job contact another host, send the credentials elsewhere or write outside the recordings folder."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, update

from ivr.jobs import PermanentJobError
from ivr.models import Recording, RecordingState
from ivr.recordings.download import checked_media_url
from tests.factories import HELLO_WAV, post_recording_completed, sha256_of

CALL_SID = "CA" + "6" * 32
RECORDING_SID = "RE" + "6" * 32
ALLOWED = ("api.twilio.com", "127.0.0.1")


class Trap:
    """A local server that answers every request (with a redirect, when told) and remembers it."""

    def __init__(self, location: str | None = None) -> None:
        self.location = location
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization header)
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                trap.requests.append((self.path, self.headers.get("Authorization")))
                if trap.location:
                    self.send_response(302)
                    self.send_header("Location", trap.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = HELLO_WAV.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")  # an upstream type we must not serve back
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    server = Trap()
    yield server
    server.close()


def report(client, settings, url: str, sid: str = RECORDING_SID):
    return post_recording_completed(client, settings, CALL_SID, sid, url)


def download_through_a_redirect(client, settings, worker, location: str) -> Trap:
    """Report a recording whose URL answers with a redirect to `location`; returns that (closed) server."""
    redirector = Trap(location=location)
    try:
        url = f"http://127.0.0.1:{redirector.port}/2010-04-01/Accounts/AC1/Recordings/{RECORDING_SID}"
        report(client, settings, url)
        assert worker.wait_idle(timeout=20)
    finally:
        redirector.close()
    return redirector


def recording_row(database, sid: str = RECORDING_SID) -> Recording | None:
    with database.session(read_only=True) as session:
        return session.scalars(select(Recording).where(Recording.recording_sid == sid)).first()


@pytest.mark.parametrize(
    "template",
    [
        "http://localhost:{trap}\\@127.0.0.1:{trap}/Recordings/RE1",  # requests would fetch from `localhost`
        "http://localhost:{trap}\\\\@127.0.0.1/RE1",
        "https://user:secret@api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
        "https://api.twilio.com:8443/2010-04-01/Accounts/AC1/Recordings/RE1",
        "https://api.twilio.com:99999/RE1",
        "https://api.twilio.com/2010-04-01/Recordings/RE1 http://localhost:{trap}/",
        "https://api.twilio.com/2010-04-01/Recordings/RE1\r\nHost: localhost",
        "https://api.twilio.com.localhost/RE1",
        "https://аpi.twilio.com/RE1",  # a Cyrillic а
    ],
)
def test_crafted_recording_urls_are_refused(template, trap):
    with pytest.raises(PermanentJobError):
        checked_media_url(template.format(trap=trap.port), ALLOWED)
    assert trap.requests == []


def test_loopback_http_is_refused_in_production():
    with pytest.raises(PermanentJobError, match="https"):
        checked_media_url("http://127.0.0.1:8000/r/RE1", ALLOWED, allow_loopback_http=False)


def test_a_crafted_url_in_a_callback_never_reaches_the_trap(client, settings, database, worker, trap):
    url = f"http://localhost:{trap.port}\\@127.0.0.1:{trap.port}/2010-04-01/Accounts/AC1/Recordings/{RECORDING_SID}"
    assert report(client, settings, url).status_code == 200
    assert worker.wait_idle(timeout=20)
    recording = recording_row(database)
    assert recording is not None and recording.state == RecordingState.FAILED
    assert "characters a URL may not have" in (recording.error or "")
    assert trap.requests == []


def test_a_redirect_to_a_host_we_do_not_trust_is_not_followed(client, settings, database, worker, trap):
    redirector = download_through_a_redirect(client, settings, worker, f"http://localhost:{trap.port}/stolen")
    recording = recording_row(database)
    assert recording is not None and recording.state == RecordingState.FAILED
    assert "not in IVR_RECORDING_HOSTS" in (recording.error or "")
    assert len(redirector.requests) == 1 and trap.requests == []


def test_a_redirect_to_an_allowed_host_is_followed_without_the_credentials(client, settings, database, worker, trap):
    location = f"http://127.0.0.1:{trap.port}/media/{RECORDING_SID}.wav"
    redirector = download_through_a_redirect(client, settings, worker, location)
    recording = recording_row(database)
    assert recording is not None and recording.state == RecordingState.STORED, recording.error
    assert recording.sha256 == sha256_of(HELLO_WAV)
    assert redirector.requests[0][1] is not None  # Twilio's host gets the basic auth …
    assert trap.requests == [(f"/media/{RECORDING_SID}.wav", None)]  # … another host never does


def test_stored_audio_is_served_with_a_fixed_audio_type(client, settings, database, worker, trap, api_token):
    report(client, settings, f"http://127.0.0.1:{trap.port}/2010-04-01/Accounts/AC1/Recordings/{RECORDING_SID}")
    assert worker.wait_idle(timeout=20)
    with client.get(
        f"/api/recordings/{RECORDING_SID}/audio", headers={"Authorization": f"Bearer {api_token}"}
    ) as answer:
        assert answer.status_code == 200 and answer.data == HELLO_WAV.read_bytes()
        assert answer.mimetype == "audio/wav"  # not the text/html the upstream claimed
    with database.session() as session:  # a row stored before the type was fixed still plays as audio
        session.execute(update(Recording).values(content_type="text/html"))
    with client.get(f"/api/recordings/{RECORDING_SID}/audio", headers={"Authorization": f"Bearer {api_token}"}) as old:
        assert old.mimetype == "audio/wav"


@pytest.mark.parametrize("sid", ["RE../../../../tmp/evil", "RE" + "6" * 31 + "/", "../" + "6" * 32, "RE" + "g" * 32])
def test_a_recording_sid_not_in_twilios_format_is_refused_before_it_touches_anything(
    client, settings, database, sid, tmp_path
):
    answer = report(client, settings, "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1", sid=sid)
    assert answer.status_code == 400
    with database.session(read_only=True) as session:
        assert session.scalars(select(Recording)).first() is None
    assert not any(settings.recordings_dir.rglob("*")) if settings.recordings_dir.exists() else True
