"""Faults through the real processes: `ivr serve` over HTTP with Twilio's 15 s timeout, while another
process holds the SQLite lock, or after `ivr serve` is killed. Every webhook answers TwiML within 5 s,
the message ends on one ticket byte-exact, and nothing is duplicated."""

from __future__ import annotations

import contextlib
import time

import pytest

from ivr.devphone.emulator import Message, TwilioEmulator
from ivr.devphone.transport import HttpTransport
from ivr.models import RecordingState
from tests.conftest import PG_URL
from tests.factories import HELLO_WAV, recordings_of, sha256_of, ticket_for
from tests.faults import (
    ANSWER_WITHIN_SECONDS,
    TWILIO_TIMEOUT_SECONDS,
    HookedTransport,
    ServeProcess,
    counts,
    sqlite_locked_by_another_process,
    wait_until,
)

LOCK_SECONDS = 25


def stored_once(database, call_sid: str) -> bool:
    ticket = ticket_for(database, call_sid)
    recordings = recordings_of(database, call_sid)
    return ticket is not None and [r.state for r in recordings] == [RecordingState.STORED]


@pytest.mark.skipif(bool(PG_URL), reason="a SQLite file lock")
def test_sqlite_locked_for_25_seconds_by_another_process_during_a_call(settings_environ, settings, database,
                                                                       recording_server, tmp_path):
    database_file = settings.database_url.removeprefix("sqlite:///")
    with ServeProcess(settings_environ, tmp_path / "serve.log") as server, contextlib.ExitStack() as lock:
        locked_at: list[float] = []

        def lock_before_the_room(index: int, url: str) -> None:
            if index == 2:  # the greeting and the menu choice are written; then a backup takes the lock
                lock.enter_context(sqlite_locked_by_another_process(database_file))
                locked_at.append(time.monotonic())

        transport = HookedTransport(HttpTransport(server.url, server.url, timeout=TWILIO_TIMEOUT_SECONDS),
                                    lock_before_the_room)
        phone = TwilioEmulator(transport, server.url, settings.twilio_account_sid, settings.twilio_auth_token,
                               recording_server)
        result = phone.call(["1", "3*2*501#", Message(HELLO_WAV)], from_="+8613912345678")
        slowest = max(exchange.seconds for exchange in result.requests)
        assert locked_at and time.monotonic() - locked_at[0] < LOCK_SECONDS, "the call outlasted the lock"
        time.sleep(max(0.0, LOCK_SECONDS - (time.monotonic() - locked_at[0])))
        lock.close()
        assert result.errors == [], result.describe()
        assert all(exchange.status == 200 for exchange in result.requests), result.describe()
        assert slowest < ANSWER_WITHIN_SECONDS, slowest
        # The database is free again: `ivr serve` replays the spool by itself and fetches the message.
        assert wait_until(lambda: stored_once(database, result.call_sid), timeout=60), (
            (tmp_path / "serve.log").read_text()[-3000:])
        [recording] = recordings_of(database, result.call_sid)
        assert recording.sha256 == sha256_of(HELLO_WAV)
        assert (settings.recordings_dir / recording.path).read_bytes() == HELLO_WAV.read_bytes()
        before = counts(database)
        time.sleep(6)  # another replay round: nothing more happens
        assert counts(database) == before
        assert before["tickets"] == 1 and before["recordings"] == 1
        ticket = ticket_for(database, result.call_sid)
        assert ticket is not None and ticket.category.value == "repair" and ticket.room == "3-2-501"
