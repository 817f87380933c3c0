"""The Twilio REST client (ivr/twilio_rest.py) against a loopback peer that never answers."""

from __future__ import annotations

import http.server
import threading
import time

import pytest
import requests

from ivr import twilio_rest
from ivr.twilio_rest import twilio_client
from tests.http_thread import serving

BOUND = 0.5  # the test's CLIENT_TIMEOUT, seconds


def test_a_rest_call_to_a_peer_that_never_answers_fails_within_the_bound(settings, monkeypatch):
    monkeypatch.setattr(twilio_rest, "CLIENT_TIMEOUT", BOUND)
    release = threading.Event()
    asked = threading.Event()

    class Silent(http.server.BaseHTTPRequestHandler):
        """Takes the whole request, then says nothing until the test is over."""

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            asked.set()
            release.wait(30)

    outcome: list[object] = []

    def place_call(base_url: str) -> None:
        client = twilio_client(settings.replace(twilio_api_url=base_url))
        try:
            outcome.append(client.calls.create(to="+8613912345678", from_="+861012345678", url="https://x.test/a"))
        except Exception as exc:  # handed to the test, which asserts on it
            outcome.append(exc)

    with serving(Silent) as base_url:
        started = time.monotonic()
        caller = threading.Thread(target=place_call, args=(base_url,), daemon=True)
        caller.start()
        # Without a bound the call would wait forever: give it ten times the bound, then hang up on it.
        caller.join(timeout=BOUND * 10)
        took = time.monotonic() - started
        release.set()
        caller.join(timeout=5)

    assert asked.is_set(), "the request never reached the server"
    assert took < BOUND * 10, "the REST call was still waiting for Twilio's answer"
    assert took >= BOUND * 0.9
    assert len(outcome) == 1 and isinstance(outcome[0], requests.Timeout), outcome
    # What the jobs catch to try again later.
    assert isinstance(outcome[0], requests.RequestException)


@pytest.mark.parametrize("api_url", ["https://api.twilio.com", "http://127.0.0.1:9"])
def test_both_kinds_of_client_have_the_bound(settings, api_url):
    client = twilio_client(settings.replace(twilio_api_url=api_url))

    assert client.http_client.timeout == twilio_rest.CLIENT_TIMEOUT
