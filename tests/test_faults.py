"""Faults through the real processes: `ivr serve` over HTTP with Twilio's 15 s timeout, while another
process holds the SQLite lock, or after `ivr serve` is killed. Every webhook answers TwiML within 5 s,
the message ends on one ticket byte-exact, and nothing is duplicated."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from ivr.devphone.callers import Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.transport import HttpTransport
from ivr.models import Call, Job, JobState, RecordingState
from ivr.telephony.prompts import prompt
from tests.conftest import PG_URL
from tests.factories import HELLO_WAV, call_params, recordings_of, sha256_of, signed_post, ticket_for
from tests.faults import (
    ANSWER_WITHIN_SECONDS,
    TWILIO_TIMEOUT_SECONDS,
    HookedTransport,
    ServeProcess,
    ThrowawayPostgres,
    counts,
    postgres_bindir,
    sqlite_locked_by_another_process,
    wait_until,
)

LOCK_SECONDS = 25
TROUBLE = prompt("system_trouble")


def stored_once(database, call_sid: str) -> bool:
    ticket = ticket_for(database, call_sid)
    recordings = recordings_of(database, call_sid)
    return ticket is not None and [r.state for r in recordings] == [RecordingState.STORED]


@pytest.mark.skipif(bool(PG_URL), reason="a SQLite file lock")
def test_sqlite_locked_for_25_seconds_by_another_process_during_a_call(
    settings_environ, settings, database, recording_server, tmp_path
):
    database_file = settings.database_url.removeprefix("sqlite:///")
    with ServeProcess(settings_environ, tmp_path / "serve.log") as server, contextlib.ExitStack() as lock:
        locked_at: list[float] = []

        def lock_before_the_room(index: int, url: str) -> None:
            if index == 2:  # the greeting and the menu choice are written; then a backup takes the lock
                lock.enter_context(sqlite_locked_by_another_process(database_file))
                locked_at.append(time.monotonic())

        transport = HookedTransport(
            HttpTransport(server.url, server.url, timeout=TWILIO_TIMEOUT_SECONDS), lock_before_the_room
        )
        phone = TwilioEmulator(
            transport, server.url, settings.twilio_account_sid, settings.twilio_auth_token, recording_server
        )
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
            tmp_path / "serve.log"
        ).read_text()[-3000:]
        [recording] = recordings_of(database, result.call_sid)
        assert recording.sha256 == sha256_of(HELLO_WAV)
        assert (settings.recordings_dir / recording.path).read_bytes() == HELLO_WAV.read_bytes()
        before = counts(database)
        time.sleep(6)  # another replay round: nothing more happens
        assert counts(database) == before
        assert before["tickets"] == 1 and before["recordings"] == 1
        ticket = ticket_for(database, result.call_sid)
        assert ticket is not None and ticket.category.value == "repair" and ticket.room == "3-2-501"


def post_signed(server: ServeProcess, settings, path: str, params: dict[str, str]) -> requests.Response:
    url = server.url + path
    signature = RequestValidator(settings.twilio_auth_token).compute_signature(url, params)
    return requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=TWILIO_TIMEOUT_SECONDS)


def test_ivr_serve_killed_during_a_slow_download_finishes_it_after_a_restart(
    settings_environ, settings, database, tmp_path
):
    from tests.streaming_http import Reply, running_streaming_server
    from tests.test_recording_download import leftover_parts, write_wav

    call_sid, recording_sid = "CA" + "8" * 32, "RE" + "8" * 32
    body = tmp_path / "message.wav"
    expected_sha = write_wav(body, 1024 * 1024)
    with running_streaming_server() as upstream, ServeProcess(settings_environ, tmp_path / "serve.log") as server:
        # The first fetch trickles (16 blocks, 1 s apart); the one after the restart comes at once.
        url = upstream.serve(f"/rec/{recording_sid}.wav", Reply(body, pause=1.0), Reply(body))
        params = call_params(
            call_sid,
            RecordingSid=recording_sid,
            RecordingUrl=url.removesuffix(".wav"),
            RecordingStatus="completed",
            RecordingDuration="60",
            RecordingSource="RecordVerb",
        )
        assert post_signed(server, settings, "/twilio/recording-status", params).status_code == 200
        assert wait_until(lambda: len(upstream.requests) == 1, timeout=30)
        server.kill()  # mid-download: the job is left `running`, owned by a dead process
        with database.session(read_only=True) as session:
            job = session.scalars(select(Job).where(Job.kind == "download_recording")).one()
        assert job.state == JobState.RUNNING and job.owner
        # Its owner is the server's worker process, which died with the server (no orphan goes on downloading).
        owner = int(job.owner.rsplit(":", 1)[1])
        assert wait_until(lambda: not Path(f"/proc/{owner}").exists(), timeout=5), f"worker {owner} outlived the server"

        server.start()  # re-queues the dead process's job at once (not after the 15-minute sweep of old)
        assert wait_until(lambda: stored_once(database, call_sid), timeout=30), (tmp_path / "serve.log").read_text()
    [recording] = recordings_of(database, call_sid)
    assert recording.sha256 == expected_sha
    assert (settings.recordings_dir / recording.path).read_bytes() == body.read_bytes()
    assert leftover_parts(settings) == []
    with database.session(read_only=True) as session:
        job = session.scalars(select(Job).where(Job.kind == "download_recording")).one()
    assert (job.state, job.attempts) == (JobState.DONE, 2)
    assert len(upstream.requests) == 2


def test_a_recording_host_down_for_ten_minutes_then_back(client, settings, database, recording_server):
    """The production backoff (10 s doubling, capped at 30 min) scaled 1:200 so that ten minutes take three
    seconds: the host refuses every fetch for the first "ten minutes", then serves the message."""
    from ivr import create_app
    from ivr.jobs import retry_delay

    scale = 1 / 200
    app = create_app(settings, retry_base_seconds=10 * scale, retry_cap_seconds=30 * 60 * scale)
    queue = app.extensions["ivr.queue"]
    call_sid, recording_sid = "CA" + "9" * 32, "RE" + "9" * 32
    url = recording_server.add(recording_sid, HELLO_WAV, call_sid=call_sid)
    outage_ends = time.monotonic() + 10 * 60 * scale
    attempts_in_outage = sum(1 for n in range(1, 60) if sum(retry_delay(k) for k in range(1, n)) < 600)
    recording_server.fail_next(recording_sid, times=attempts_in_outage, status=503)
    params = call_params(
        call_sid,
        RecordingSid=recording_sid,
        RecordingUrl=url,
        RecordingStatus="completed",
        RecordingDuration="2",
        RecordingSource="RecordVerb",
    )
    assert signed_post(app.test_client(), settings, "/twilio/recording-status", params).status_code == 200
    queue.start_embedded(workers=2)
    try:
        assert wait_until(lambda: stored_once(database, call_sid), timeout=30)
    finally:
        queue.stop_embedded()
        app.extensions["ivr.database"].dispose()
    assert time.monotonic() >= outage_ends - 0.5  # it really waited the outage out
    assert recording_server.fetch_count(recording_sid) == attempts_in_outage + 1
    [recording] = recordings_of(database, call_sid)
    assert recording.sha256 == sha256_of(HELLO_WAV)


@pytest.mark.skipif(postgres_bindir() is None, reason="PostgreSQL server binaries are not installed")
@pytest.mark.skipif(bool(PG_URL), reason="runs once, in the SQLite pass: the server is the test's own")
def test_a_webhook_after_a_postgresql_restart_gets_its_answer_on_a_fresh_connection(settings_environ, tmp_path):
    """The webhook pool's connections are not pinged: the first webhook after a restart finds its pooled
    connection gone and runs again on a new one, so the caller hears the next step, nothing is spooled."""
    from ivr import create_app
    from ivr.config import load_settings
    from ivr.db import Database
    from ivr.migrate import upgrade_database
    from ivr.telephony.spool import Spool

    postgres = ThrowawayPostgres()
    try:
        postgres.start()
        upgrade_database(postgres.url)
        settings = load_settings({**settings_environ, "IVR_DATABASE_URL": postgres.url})
        app = create_app(settings)
        client = app.test_client()
        call_sid = "CA" + "7" * 32
        try:
            assert prompt("main_menu") in signed_post(client, settings, "/twilio/voice", call_params(call_sid)).text
            postgres.stop("fast")  # every pooled connection is now dead
            postgres.start()
            reply = signed_post(client, settings, "/twilio/menu", call_params(call_sid, Digits="1"))
            assert reply.status_code == 200 and prompt("ask_room") in reply.text
            assert Spool(settings.spool_dir).status().pending == 0
        finally:
            app.extensions["ivr.database"].dispose()
        database = Database(postgres.url)
        try:
            with database.session(read_only=True) as session:
                call = session.scalars(select(Call).where(Call.call_sid == call_sid)).one()
                assert call.category is not None and call.category.value == "repair"
        finally:
            database.dispose()
    finally:
        postgres.remove()


@pytest.mark.skipif(postgres_bindir() is None, reason="PostgreSQL server binaries are not installed")
@pytest.mark.skipif(bool(PG_URL), reason="runs once, in the SQLite pass: the server is the test's own")
def test_postgresql_stopped_during_a_call_then_restarted(settings_environ, settings, recording_server, tmp_path):
    from ivr.db import Database
    from ivr.migrate import upgrade_database

    postgres = ThrowawayPostgres()
    try:
        postgres.start()
        upgrade_database(postgres.url)
        environ = {**settings_environ, "IVR_DATABASE_URL": postgres.url}
        with ServeProcess(environ, tmp_path / "serve.log") as server:
            stopped: list[float] = []

            def stop_before_the_room(index: int, url: str) -> None:
                if index == 2:  # the greeting and the menu choice are written; then the server goes away
                    postgres.stop("fast")
                    stopped.append(time.monotonic())

            transport = HookedTransport(
                HttpTransport(server.url, server.url, timeout=TWILIO_TIMEOUT_SECONDS), stop_before_the_room
            )
            phone = TwilioEmulator(
                transport, server.url, settings.twilio_account_sid, settings.twilio_auth_token, recording_server
            )
            result = phone.call(["1", "3*2*501#", Message(HELLO_WAV)], from_="+8613912345678")
            assert stopped, "the fault never happened"
            assert result.errors == [], result.describe()
            assert all(exchange.status == 200 for exchange in result.requests), result.describe()
            assert max(exchange.seconds for exchange in result.requests) < ANSWER_WITHIN_SECONDS
            assert TROUBLE in result.said
            health = requests.get(f"{server.url}/healthz", timeout=5)
            assert health.status_code == 503 and health.json()["spool"]["pending"] >= 3

            postgres.start()  # back: ivr serve replays the spool and fetches the message by itself
            database = Database(postgres.url)
            try:
                assert wait_until(lambda: stored_once(database, result.call_sid), timeout=60), (
                    tmp_path / "serve.log"
                ).read_text()[-3000:]
                ticket = ticket_for(database, result.call_sid)
                assert ticket is not None and ticket.room == "3-2-501" and ticket.category.value == "repair"
                [recording] = recordings_of(database, result.call_sid)
                assert recording.sha256 == sha256_of(HELLO_WAV)
                assert counts(database)["tickets"] == 1
                assert requests.get(f"{server.url}/healthz", timeout=5).json()["status"] == "ok"
            finally:
                database.dispose()
    finally:
        postgres.remove()
