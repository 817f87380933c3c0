"""Reconciliation with Twilio: recordings the line never heard of are imported from Twilio's REST API.

Twilio is the dev phone's recording server (IVR_TWILIO_API_URL points at it), which serves the
Recordings list and the Calls resource as Twilio does.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from ivr.cli import main
from ivr.cli_state import CliState
from ivr.config import load_settings
from ivr.db import utcnow
from ivr.devphone.callers import Message
from ivr.devphone.recording_server import RecordingServer
from ivr.jobs import JobContext, JobQueue
from ivr.models import Call, Checkpoint, Job, Recording, RecordingState, Ticket
from ivr.recordings import reconcile
from ivr.recordings.reconcile import (
    CHECKPOINT,
    RECOVERED_NOTE,
    ImportedRecording,
    ReconcileError,
    reconcile_periodically,
    reconcile_recordings,
)
from tests.factories import DUAL_WAV, HELLO_WAV, call_params, count, sha256_of, signed_post, ticket_for

CALL_SID = "CA" + "7" * 32
RECORDING_SID = "RE" + "7" * 32
CALLER = "+8613911112222"
LINE = "+861062345678"
AN_HOUR_AGO = timedelta(hours=1)


@pytest.fixture
def recording_server(settings_environ):
    """Twilio's REST API and recording media for the test account."""
    with RecordingServer(settings_environ["TWILIO_ACCOUNT_SID"], settings_environ["TWILIO_AUTH_TOKEN"]) as server:
        yield server


@pytest.fixture
def settings(settings_environ, recording_server):
    """Every Twilio REST call goes to the recording server."""
    return load_settings({**settings_environ, "IVR_TWILIO_API_URL": recording_server.base_url})


@pytest.fixture
def context(queue: JobQueue) -> JobContext:
    """The app's job context: download jobs scheduled by reconciliation are handed to its queue on commit.

    The queue's own periodic reconciliation is unregistered, so a test running at minute :x0 with the
    worker consuming is not raced by it."""
    for task in queue.huey._registry.periodic_tasks:
        if task.name == "reconcile_recordings":
            queue.huey._registry.unregister(type(task))
    return queue.context


def lost_message(
    server: RecordingServer,
    recording_sid: str = RECORDING_SID,
    call_sid: str = CALL_SID,
    *,
    age: timedelta = AN_HOUR_AGO,
    caller: str = CALLER,
    **options,
) -> datetime:
    """A message Twilio recorded whose webhooks never reached the line; returns the call's start."""
    started = (utcnow() - age - timedelta(seconds=30)).replace(microsecond=0)
    server.add_call(call_sid, from_=caller, to=LINE, start_time=started)
    server.add(
        recording_sid,
        options.pop("wav", HELLO_WAV),
        call_sid=call_sid,
        duration=2,
        date_created=utcnow() - age,
        **options,
    )
    return started


def list_requests(server: RecordingServer) -> list[dict[str, str]]:
    """The query of every Recordings list request the server answered."""
    return [
        dict(parse_qsl(urlsplit(entry.path).query))
        for entry in server.log
        if urlsplit(entry.path).path.endswith("/Recordings.json")
    ]


def test_a_message_the_line_never_heard_of_becomes_a_recovered_ticket_with_its_audio(
    client, settings, context, worker, recording_server
):
    started = lost_message(recording_server)

    report = reconcile_recordings(context)

    ticket = ticket_for(context.database, CALL_SID)
    assert ticket is not None
    assert report.imported == [ImportedRecording(RECORDING_SID, CALL_SID, "message", CALLER, ticket.number)]
    assert (ticket.recovered, ticket.note, ticket.caller_number, ticket.confirmed) == (
        True,
        RECOVERED_NOTE,
        CALLER,
        False,
    )
    assert (ticket.call.from_number, ticket.call.to_number, ticket.call.started_at) == (CALLER, LINE, started)
    assert worker.wait_idle(timeout=20)
    with context.database.session() as session:
        recording = session.scalars(select(Recording)).one()
        assert (recording.recording_sid, recording.ticket_id, recording.source) == (RECORDING_SID, ticket.id, "message")
        assert recording.source_url == recording_server.url_for(RECORDING_SID)
        assert recording.state == RecordingState.STORED, recording.error
        assert recording.sha256 == sha256_of(HELLO_WAV)
        assert (settings.recordings_dir / (recording.path or "")).read_bytes() == HELLO_WAV.read_bytes()

    again = reconcile_recordings(context)

    assert again.imported == [] and (again.listed, again.known) == (1, 1)
    assert (count(context.database, Ticket), count(context.database, Recording), count(context.database, Call)) == (
        1,
        1,
        1,
    )
    # The late webhook of the same recording finds its row: nothing new, no second download.
    params = call_params(
        CALL_SID,
        From=CALLER,
        RecordingSid=RECORDING_SID,
        RecordingStatus="completed",
        RecordingUrl=recording_server.url_for(RECORDING_SID),
        RecordingDuration="2",
    )
    assert signed_post(client, settings, "/twilio/recording-status", params).status_code == 200
    assert worker.wait_idle(timeout=20)
    assert (count(context.database, Ticket), count(context.database, Recording)) == (1, 1)
    assert recording_server.fetch_count(RECORDING_SID) == 1


def test_every_page_of_the_list_is_followed(context, recording_server, monkeypatch):
    monkeypatch.setattr(reconcile, "PAGE_SIZE", 2)
    sids = [f"RE{index:032x}" for index in range(1, 6)]
    for index, sid in enumerate(sids):
        lost_message(
            recording_server,
            sid,
            f"CA{index:032x}",
            age=AN_HOUR_AGO + timedelta(minutes=index),
            caller=f"+861391111000{index}",
        )

    report = reconcile_recordings(context)

    assert sorted(item.recording_sid for item in report.imported) == sids
    pages = list_requests(recording_server)
    assert [page.get("Page") for page in pages] == [None, "1", "2"]
    assert {page["PageSize"] for page in pages} == {"2"}
    assert {page["DateCreated>"] for page in pages} == {(utcnow() - timedelta(days=2)).date().isoformat()}
    assert count(context.database, Ticket) == 5
    with context.database.session() as session:
        assert sorted(session.scalars(select(Ticket.caller_number))) == [f"+861391111000{i}" for i in range(5)]


def test_a_recording_the_line_already_has_is_not_imported_again(phone, context, recording_server):
    result = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "1"]).raise_for_errors()
    [sid] = result.recordings
    tickets, recordings = count(context.database, Ticket), count(context.database, Recording)

    report = reconcile_recordings(context, settle=timedelta(0))

    assert (report.listed, report.known, report.imported) == (1, 1, [])
    assert (count(context.database, Ticket), count(context.database, Recording)) == (tickets, recordings) == (1, 1)
    ticket = ticket_for(context.database, result.call_sid)
    assert ticket is not None and not ticket.recovered and ticket.recordings[0].recording_sid == sid


def test_a_transfer_recording_is_kept_on_its_call_without_a_ticket(context, worker, recording_server):
    lost_message(recording_server, wav=DUAL_WAV, source="DialVerb", channels=2)

    report = reconcile_recordings(context)

    assert report.imported == [ImportedRecording(RECORDING_SID, CALL_SID, "dial", CALLER, None)]
    assert count(context.database, Ticket) == 0
    assert worker.wait_idle(timeout=20)
    with context.database.session() as session:
        recording = session.scalars(select(Recording)).one()
        assert (recording.source, recording.ticket_id, recording.call.from_number) == ("dial", None, CALLER)
        assert recording.state == RecordingState.STORED and recording.sha256 == sha256_of(DUAL_WAV)
        assert recording.channels == 2


def test_recordings_not_completed_or_too_recent_are_left_for_a_later_run(context, recording_server):
    lost_message(recording_server, "RE" + "1" * 32, "CA" + "1" * 32, status="processing")
    lost_message(recording_server, "RE" + "2" * 32, "CA" + "2" * 32, age=timedelta(minutes=1))

    report = reconcile_recordings(context)

    assert (report.listed, report.not_completed, report.too_recent, report.imported) == (2, 1, 1, [])
    assert count(context.database, Recording) == 0
    later = reconcile_recordings(context, now=utcnow() + timedelta(minutes=20))
    assert [item.recording_sid for item in later.imported] == ["RE" + "2" * 32]


def test_wrong_credentials_leave_nothing_written(context, recording_server):
    lost_message(recording_server)
    recording_server.auth_token = "rotated"

    with pytest.raises(ReconcileError) as raised:
        reconcile_recordings(context)

    message = str(raised.value)
    assert "nothing was imported" in message and "HTTP 401, Twilio error 20003" in message
    assert "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in message
    for model in (Call, Ticket, Recording, Job, Checkpoint):
        assert count(context.database, model) == 0, model


@pytest.mark.parametrize("failing", ["second page", "call"])
def test_a_failure_part_way_through_leaves_nothing_written(context, recording_server, monkeypatch, failing):
    monkeypatch.setattr(reconcile, "PAGE_SIZE", 1)
    lost_message(recording_server)
    lost_message(recording_server, "RE" + "8" * 32, "CA" + "8" * 32)
    if failing == "second page":
        recording_server.fail_next("Recordings", status=503, after=1)
    else:
        recording_server.fail_next("CA" + "8" * 32, status=500)

    with pytest.raises(ReconcileError, match="HTTP 50"):
        reconcile_recordings(context)

    for model in (Call, Ticket, Recording, Job, Checkpoint):
        assert count(context.database, model) == 0, model
    assert len(reconcile_recordings(context).imported) == 2  # the next run does it all


def test_unreachable_twilio_says_so(context):
    closed = JobContext(context.settings.replace(twilio_api_url="http://127.0.0.1:9"), context.database)

    with pytest.raises(ReconcileError, match=r"could not reach Twilio at 127\.0\.0\.1:9 \(ConnectionError\)"):
        reconcile_recordings(closed)
    assert count(context.database, Checkpoint) == 0


def test_runs_list_since_the_last_run_with_an_overlap(context, recording_server):
    lost_message(recording_server, "RE" + "5" * 32, "CA" + "5" * 32, age=timedelta(days=5))

    first = reconcile_recordings(context)

    assert first.since == (utcnow() - timedelta(days=2)).date() and first.listed == 0  # too old for a first run
    with context.database.session() as session:
        reached = session.get(Checkpoint, CHECKPOINT)
        assert reached is not None and utcnow() - reached.at < timedelta(minutes=1)
        session.add(Checkpoint(name="other", at=reached.at))  # a neighbour the run must not touch
        reached.at = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)  # as if the last run was then
    second = reconcile_recordings(context)
    assert second.since.isoformat() == "2026-11-26"  # 01:30 minus three hours of overlap
    assert list_requests(recording_server)[-1]["DateCreated>"] == "2026-11-26"


def test_the_cli_imports_from_a_given_day_and_prints_what_it_imported(settings, database, recording_server):
    lost_message(recording_server, age=timedelta(days=5))
    since = (utcnow() - timedelta(days=6)).date().isoformat()

    result = CliRunner().invoke(main, ["twilio", "reconcile", "--since", since], obj=CliState(settings))

    assert result.exit_code == 0, result.output
    ticket = ticket_for(database, CALL_SID)
    assert ticket is not None and ticket.recovered
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Twilio recordings created since {since}: 1 listed, 0 already here")
    assert lines[1] == f"imported {RECORDING_SID} (call {CALL_SID}, {CALLER}): recovered ticket {ticket.number}"
    with database.session() as session:
        assert session.scalars(select(Job.kind)).all() == ["download_recording"]
    # An older --since than the automatic one covers it, so the checkpoint moves on.
    assert count(database, Checkpoint) == 1


def test_the_cli_says_what_to_check_when_twilio_refuses(settings, database, recording_server):
    recording_server.auth_token = "rotated"

    result = CliRunner().invoke(main, ["twilio", "reconcile"], obj=CliState(settings))

    assert result.exit_code == 1
    assert "Twilio rejected the credentials" in result.stderr and "nothing was imported" in result.stderr
    assert settings.twilio_auth_token not in result.output


def test_the_periodic_task_is_registered_and_logs_instead_of_raising(queue, recording_server, caplog):
    assert "reconcile_recordings" in {task.name for task in queue.huey._registry.periodic_tasks}
    recording_server.auth_token = "rotated"

    with caplog.at_level(logging.WARNING, logger="ivr.recordings.reconcile"):
        reconcile_periodically(queue.context)

    assert "Twilio rejected the credentials" in caplog.text


# --- the dev phone's REST API -----------------------------------------------------------------------------


def test_the_recording_server_lists_recordings_and_calls_as_twilio_does(settings, recording_server):
    started = lost_message(recording_server, age=timedelta(days=1))
    auth = (settings.twilio_account_sid, settings.twilio_auth_token)
    base = f"{recording_server.base_url}/2010-04-01/Accounts/{settings.twilio_account_sid}"
    today = utcnow().date().isoformat()

    listed = requests.get(base + "/Recordings.json", params={"PageSize": "1"}, auth=auth, timeout=5).json()
    [item] = listed["recordings"]
    assert (item["sid"], item["call_sid"], item["status"], item["source"], item["duration"]) == (
        RECORDING_SID,
        CALL_SID,
        "completed",
        "RecordVerb",
        "2",
    )
    assert item["uri"] == f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Recordings/{RECORDING_SID}.json"
    assert item["media_url"] == recording_server.url_for(RECORDING_SID)
    assert item["date_created"].endswith(" GMT")
    assert (listed["page"], listed["page_size"], listed["next_page_uri"]) == (0, 1, None)
    assert (
        requests.get(base + "/Recordings.json", params={"DateCreated>": today}, auth=auth, timeout=5).json()[
            "recordings"
        ]
        == []
    )
    assert requests.get(base + "/Recordings.json", params={"DateCreated<": today}, auth=auth, timeout=5).json()[
        "recordings"
    ] == [item]

    call = requests.get(f"{base}/Calls/{CALL_SID}.json", auth=auth, timeout=5).json()
    assert (call["sid"], call["from"], call["to"], call["direction"]) == (CALL_SID, CALLER, LINE, "inbound")
    assert call["start_time"] == started.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert requests.get(base + "/Calls.json", auth=auth, timeout=5).json()["calls"] == [call]
    assert requests.get(f"{base}/Calls/CA{'0' * 32}.json", auth=auth, timeout=5).status_code == 404
    assert requests.get(base + "/Recordings.json", timeout=5).status_code == 401
    assert requests.get(base + "/Recordings.json", params={"PageSize": "1001"}, auth=auth, timeout=5).status_code == 400


def test_the_emulator_tells_the_recording_server_who_called(phone, recording_server):
    result = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "1"], from_=CALLER).raise_for_errors()

    call = recording_server.get_call(result.call_sid)
    assert call is not None and (call.from_, call.to) == (CALLER, "+861062345678")
