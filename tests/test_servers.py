"""The real processes: `ivr serve` with its embedded worker, and `ivr worker` on a real Redis queue."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ivr import create_app
from ivr.devphone.callers import Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.net import free_port
from ivr.devphone.transport import FlaskClientTransport, HttpTransport
from ivr.models import RecordingState
from tests.factories import HELLO_WAV, sha256_of, ticket_for

IVR = str(Path(sys.executable).with_name("ivr"))
REDIS_URL = os.environ.get("IVR_TEST_REDIS_URL", "")


def wait_until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def served(settings_environ, tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    """`ivr serve` in a subprocess on a free port, its public URL being its own address."""
    port = free_port()
    env = {**os.environ, **settings_environ, "IVR_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    process = subprocess.Popen([IVR, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)

    def healthy() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
        except (requests.ConnectionError, requests.Timeout):  # the worker is still starting
            return False

    try:
        assert wait_until(healthy), (tmp_path / "serve.log").read_text()
        yield f"http://127.0.0.1:{port}", env
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_ivr_serve_answers_a_whole_call_and_stores_the_message(served, recording_server, database, settings):
    url, _ = served
    phone = TwilioEmulator(
        HttpTransport(url, url), url, settings.twilio_account_sid, settings.twilio_auth_token, recording_server
    )
    result = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "1"]).raise_for_errors()
    assert "您的工单号是" in result.transcript()

    def stored() -> bool:
        ticket = ticket_for(database, result.call_sid)
        return ticket is not None and [r.state for r in ticket.recordings] == [RecordingState.STORED]

    assert wait_until(stored), "the embedded worker did not store the message"
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.recordings[0].sha256 == sha256_of(HELLO_WAV)


def test_ivr_call_is_a_working_phone_against_ivr_serve(served):
    url, env = served
    completed = subprocess.run(
        [IVR, "call", "--server", url, "--keys", "2,3*2*501#,1,1", "--message", str(HELLO_WAV)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "很高兴为您服务" in completed.stdout and "您的工单号是" in completed.stdout


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="IVR_TEST_REDIS_URL not set (./scripts/test starts a redis-server)")
def test_redis_queue_with_an_ivr_worker_process(settings_environ, settings, recording_server, database, tmp_path):
    redis_settings = settings.replace(redis_url=REDIS_URL)
    app = create_app(redis_settings)
    queue = app.extensions["ivr.queue"]
    assert queue.backend == "redis"
    queue.huey.flush()
    env = {**os.environ, **settings_environ, "IVR_REDIS_URL": REDIS_URL}
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen([IVR, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        phone = TwilioEmulator(
            FlaskClientTransport(app, settings.public_url),
            settings.public_url,
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            recording_server,
        )
        result = phone.call(["2", "3*2*501#", "1", Message(HELLO_WAV), "1"]).raise_for_errors()

        def stored() -> bool:
            ticket = ticket_for(database, result.call_sid)
            return ticket is not None and [r.state for r in ticket.recordings] == [RecordingState.STORED]

        assert wait_until(stored), (tmp_path / "worker.log").read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
        app.extensions["ivr.database"].dispose()
    assert client_health(app)["queue"] == "redis"


def client_health(app) -> dict:
    with app.test_client() as client:
        return client.get("/healthz").json
