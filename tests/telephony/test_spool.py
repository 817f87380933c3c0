"""Nothing a caller says is lost when the database is not there: webhooks still answer in time, the
requests wait in the spool, and replaying them builds the call, its ticket and its recording."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from click.testing import CliRunner

from ivr.cli import main
from ivr.cli_state import CliState
from ivr.devphone.callers import Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.transport import FlaskClientTransport
from ivr.models import RecordingState
from ivr.telephony.prompts import prompt
from ivr.telephony.spool import Spool, replay_spool
from tests.conftest import PG_URL
from tests.factories import HELLO_WAV, create_staff, login, recordings_of, sha256_of, ticket_for
from tests.faults import (
    ANSWER_WITHIN_SECONDS,
    counts,
    sqlite_locked_by_another_process,
)

TROUBLE = prompt("system_trouble")


def phone_for(app, settings, recording_server, transport=None) -> TwilioEmulator:
    return TwilioEmulator(
        transport or FlaskClientTransport(app, settings.public_url),
        settings.public_url,
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        recording_server,
    )


def assert_answered_in_time(result) -> None:
    """Every webhook got TwiML (HTTP 200, XML) within the budget: the caller never hears Twilio's error."""
    assert result.errors == [], result.describe()
    for exchange in result.requests:
        assert exchange.status == 200, (exchange.url, exchange.status, exchange.body)
        assert exchange.body.lstrip().startswith("<?xml"), exchange.body
        assert exchange.seconds < ANSWER_WITHIN_SECONDS, (exchange.url, exchange.seconds)


def assert_one_stored_message(database, settings, call_sid) -> None:
    ticket = ticket_for(database, call_sid)
    assert ticket is not None
    [recording] = recordings_of(database, call_sid)
    assert recording.state == RecordingState.STORED, recording.error
    assert recording.ticket_id == ticket.id
    assert (settings.recordings_dir / recording.path).read_bytes() == HELLO_WAV.read_bytes()
    assert recording.sha256 == sha256_of(HELLO_WAV)


@pytest.mark.skipif(bool(PG_URL), reason="a SQLite file lock")
def test_a_call_while_another_process_holds_the_sqlite_lock_is_answered_spooled_and_replayed(
    app, settings, database, recording_server, worker
):
    database_file = settings.database_url.removeprefix("sqlite:///")
    phone = phone_for(app, settings, recording_server)
    with sqlite_locked_by_another_process(database_file):
        started = time.monotonic()
        result = phone.call([Message(HELLO_WAV)], from_="+8613912345678")
        took = time.monotonic() - started
        assert_answered_in_time(result)
        assert TROUBLE in result.said  # the apology, then the message is recorded anyway
        assert "再见" in result.said[-1]
        assert ticket_for(database, result.call_sid) is None  # nothing could be written yet
        spooled = Spool(settings.spool_dir).entries()
        assert spooled[0].endpoint == "voice"
        assert {"fallback", "recording-status", "status"} <= {entry.endpoint for entry in spooled}
        assert took < ANSWER_WITHIN_SECONDS * len(result.requests)

    outcome = replay_spool(app)
    assert (outcome.replayed, outcome.parked, outcome.stopped_by) == (len(spooled), 0, None)
    assert Spool(settings.spool_dir).status().empty
    assert worker.wait_idle(timeout=20)
    assert_one_stored_message(database, settings, result.call_sid)
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.caller_number == "+8613912345678"
    # The ticket's clocks start when the caller called, not when the database came back.
    first_arrival = spooled[0].arrival
    assert abs((ticket.created_at - first_arrival).total_seconds()) < ANSWER_WITHIN_SECONDS * len(spooled)


def test_replaying_twice_changes_nothing(app, settings, database, recording_server, worker, monkeypatch):
    phone = phone_for(app, settings, recording_server)
    monkeypatch.setattr("ivr.telephony.webhook.get_or_create_call", _database_down)
    result = phone.call([Message(HELLO_WAV)])
    assert_answered_in_time(result)
    monkeypatch.undo()
    spool = Spool(settings.spool_dir)
    saved = settings.instance_dir / "spool-copy"
    shutil.copytree(spool.directory, saved)

    assert replay_spool(app).replayed == len(list(saved.glob("*.json")))
    assert worker.wait_idle(timeout=20)
    after_first = counts(database)
    # A crash after the commits but before the files were removed: the same requests come back.
    for path in saved.glob("*.json"):
        shutil.copy(path, spool.directory / path.name)
    again = replay_spool(app)
    assert again.replayed == len(list(saved.glob("*.json"))) and again.parked == 0
    assert worker.wait_idle(timeout=20)
    assert counts(database) == after_first
    assert_one_stored_message(database, settings, result.call_sid)


def _database_down(*args, **kwargs):
    from sqlalchemy.exc import OperationalError

    raise OperationalError("SELECT 1", None, Exception("connection refused"))


def test_a_request_that_fails_for_another_reason_is_parked_with_its_reason_and_can_be_retried(
    app, client, settings, database, recording_server, monkeypatch
):
    def bug(*args, **kwargs):
        raise RuntimeError("a bug in a step")

    phone = phone_for(app, settings, recording_server)
    monkeypatch.setattr("ivr.telephony.webhook.get_or_create_call", bug)
    result = phone.call([Message(HELLO_WAV)])
    assert_answered_in_time(result)
    spool = Spool(settings.spool_dir)
    pending = spool.status().pending
    assert pending >= 3  # voice, fallback with the recording, recording-status …

    outcome = replay_spool(app)  # the bug is still there
    assert (outcome.replayed, outcome.parked) == (0, pending)
    assert {reason for _, reason in spool.failed_entries()} == {"RuntimeError: a bug in a step"}
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json["status"] == "degraded"
    assert health.json["spool"]["failed"] == pending

    monkeypatch.undo()  # the bug is fixed
    runner = CliRunner()
    replayed = runner.invoke(main, ["spool", "replay", "--retry-failed"], obj=CliState(settings))
    assert replayed.exit_code == 0, replayed.output
    assert f"applied {pending}, parked 0" in replayed.output
    assert spool.status().empty
    assert ticket_for(database, result.call_sid) is not None


def test_a_tampered_spool_file_is_not_applied(app, settings, database, recording_server, monkeypatch):
    phone = phone_for(app, settings, recording_server)
    monkeypatch.setattr("ivr.telephony.webhook.get_or_create_call", _database_down)
    phone.call([Message(HELLO_WAV)])
    monkeypatch.undo()
    spool = Spool(settings.spool_dir)
    [first, *_] = sorted(spool.directory.glob("*.json"))
    entry = json.loads(first.read_text())
    entry["form"]["From"] = "+8610000000000"
    first.write_text(json.dumps(entry))

    outcome = replay_spool(app)
    assert outcome.parked == 1
    assert "X-Twilio-Signature does not match" in spool.failed_entries()[0][1]


def test_healthz_console_and_cli_show_what_waits_in_the_spool(
    app, client, settings, database, recording_server, monkeypatch
):
    phone = phone_for(app, settings, recording_server)
    monkeypatch.setattr("ivr.telephony.webhook.get_or_create_call", _database_down)
    result = phone.call([Message(HELLO_WAV)])
    monkeypatch.undo()
    spool = Spool(settings.spool_dir)
    status = spool.status()
    assert status.pending >= 3

    health = client.get("/healthz").json
    assert health["status"] == "degraded" and health["database"] == "ok"
    assert health["spool"]["pending"] == status.pending
    assert health["spool"]["oldest"] == status.oldest.isoformat()

    listed = CliRunner().invoke(main, ["spool", "list"], obj=CliState(settings))
    assert listed.exit_code == 0, listed.output
    assert f"{status.pending} pending" in listed.output and result.call_sid in listed.output

    create_staff(database, "night", "night_shift")
    login(client, "night")
    page = client.get("/console/").get_data(as_text=True)
    assert f"{status.pending} 个来电请求暂存在服务器磁盘上" in page

    replay_spool(app)
    assert client.get("/healthz").json["status"] == "ok"
    assert "暂存在服务器磁盘上" not in client.get("/console/").get_data(as_text=True)


def test_a_race_with_a_live_webhook_during_replay_is_run_again_not_mistaken_for_an_outage(
    app, settings, database, recording_server, monkeypatch
):
    from sqlalchemy.exc import IntegrityError

    from ivr.telephony import webhook

    phone = phone_for(app, settings, recording_server)
    monkeypatch.setattr("ivr.telephony.webhook.get_or_create_call", _database_down)
    result = phone.call([Message(HELLO_WAV)])
    monkeypatch.undo()
    pending = Spool(settings.spool_dir).status().pending
    real_run_step, raced = webhook.run_step, []

    def racing_run_step(*args, **kwargs):
        if not raced:  # the first replayed request loses a race once (a live request inserted first)
            raced.append(True)
            raise IntegrityError("INSERT", None, Exception("UNIQUE constraint failed"))
        return real_run_step(*args, **kwargs)

    monkeypatch.setattr(webhook, "run_step", racing_run_step)
    outcome = replay_spool(app)
    assert raced and (outcome.replayed, outcome.parked, outcome.stopped_by) == (pending, 0, None)
    assert ticket_for(database, result.call_sid) is not None
