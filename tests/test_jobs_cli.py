"""`ivr jobs list` and `ivr jobs retry` through Click's runner, on the test database and job queue."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import select

from ivr.cli import main
from ivr.cli_state import CliState
from ivr.db import utcnow
from ivr.jobs_cli import STATES
from ivr.models import Job, JobState, RecordingState
from tests.factories import HELLO_WAV, sha256_of
from tests.test_recording_download import (
    CALL_SID,
    RECORDING_SID,
    limit_attempts,
    report_recording,
    run_until_idle,
    stored,
)


def ivr(settings, *args: str):
    return CliRunner().invoke(main, list(args), obj=CliState(settings))


def add_job(database, kind: str, subject_id: int, **fields) -> int:
    with database.session() as session:
        job = Job(kind=kind, subject_id=subject_id, **fields)
        session.add(job)
        session.flush()
        return job.id


def failed_download(client, settings, database, queue, recording_server) -> None:
    """A download that gave up: Twilio answered 404 to both of its attempts."""
    url = recording_server.add(RECORDING_SID, HELLO_WAV, call_sid=CALL_SID)
    recording_server.fail_next(RECORDING_SID, times=2, status=404)
    report_recording(client, settings, url)
    limit_attempts(database, 2)
    run_until_idle(queue)


def test_list_shows_a_failed_download_with_its_tries_and_error(
    app, client, settings, database, queue, recording_server
):
    failed_download(client, settings, database, queue, recording_server)
    result = ivr(settings, "jobs", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "jobs: 0 queued, 0 running, 0 done, 1 failed"
    assert lines[1].split() == [
        "ID",
        "KIND",
        "SUBJECT",
        "STATE",
        "TRIES",
        "NEXT",
        "RUN",
        "/",
        "FINISHED",
        "LAST",
        "ERROR",
    ]
    row = lines[2]
    assert row.split()[:6] == ["1", "download_recording", "recording", "1", "failed", "2/2"]
    assert "finished 20" in row and "RecordingUnavailable: HTTP 404 from http://127.0.0.1:" in row
    assert row.endswith("…") and len(row.split("  ")[-1]) <= 70  # the long URL is cut short


def test_list_filters_by_state_and_kind_and_limits_the_rows(settings, database):
    now = utcnow()
    add_job(database, "download_recording", 1, state=JobState.DONE, attempts=1, finished_at=now)
    add_job(database, "transcribe_recording", 1, state=JobState.QUEUED, run_after=now + timedelta(minutes=5))
    add_job(
        database,
        "evaluate_call",
        4,
        state=JobState.RUNNING,
        attempts=1,
        owner="web-1:4242",
        lease_expires_at=now + timedelta(seconds=30),
    )
    add_job(database, "notify_sms", 9, state=JobState.FAILED, attempts=60, last_error="TwilioRestException: boom")

    queued = ivr(settings, "jobs", "list", "--state", "queued").output.splitlines()
    assert [line.split()[:5] for line in queued[2:]] == [["2", "transcribe_recording", "recording", "1", "queued"]]
    assert "next run 20" in queued[2]
    running = ivr(settings, "jobs", "list", "--kind", "evaluate_call").output.splitlines()
    assert len(running) == 3 and "call 4" in running[2] and "running on web-1:4242, lease to 20" in running[2]
    newest = ivr(settings, "jobs", "list", "--limit", "2").output.splitlines()
    assert [line.split()[0] for line in newest[2:4]] == ["4", "3"]
    assert newest[4] == "showing the newest 2 of 4; use --limit for more"
    assert "notice 9" in newest[2] and "60/60" in newest[2] and newest[2].endswith("TwilioRestException: boom")
    assert ivr(settings, "jobs", "list", "--kind", "nothing").output.splitlines()[1] == "no jobs match"
    assert ivr(settings, "jobs", "list", "--state", "stuck").exit_code == 2


def test_the_state_choices_are_the_job_states():
    assert tuple(state.value for state in JobState) == STATES


def test_retry_puts_a_failed_download_back_and_it_then_succeeds(
    app, client, settings, database, queue, recording_server
):
    failed_download(client, settings, database, queue, recording_server)
    recording, job = stored(database)
    assert recording.state == RecordingState.FAILED and recording.error
    error = job.last_error

    result = ivr(settings, "jobs", "retry", str(job.id))
    assert result.exit_code == 0, result.output
    assert (
        result.output == f"job {job.id} (download_recording, recording {recording.id}) queued again with a "
        "fresh set of attempts\n"
    )
    recording, job = stored(database)
    assert (job.state, job.attempts, job.finished_at) == (JobState.QUEUED, 0, None)
    assert job.last_error == error  # still shown until the next attempt
    assert (recording.state, recording.error) == (RecordingState.PENDING, None)  # the ticket no longer says failed
    assert len(queue.huey) == 1  # handed to the queue, not left for the sweep

    run_until_idle(queue)
    recording, job = stored(database)
    assert (job.state, job.attempts) == (JobState.DONE, 1)
    assert recording.state == RecordingState.STORED and recording.sha256 == sha256_of(HELLO_WAV)


def test_retry_all_failed_leaves_done_and_queued_jobs_alone(settings, database):
    done = add_job(database, "download_recording", 1, state=JobState.DONE, attempts=1, finished_at=utcnow())
    first = add_job(database, "notify_sms", 1, state=JobState.FAILED, attempts=60, last_error="x")
    second = add_job(database, "evaluate_call", 2, state=JobState.FAILED, attempts=3, last_error="y")
    waiting = add_job(database, "notify_sms", 2, state=JobState.QUEUED, attempts=5)
    result = ivr(settings, "jobs", "retry", "--all-failed")
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 2
    with database.session() as session:
        jobs = {job.id: job for job in session.scalars(select(Job))}
    assert [(jobs[i].state, jobs[i].attempts) for i in (done, first, second, waiting)] == [
        (JobState.DONE, 1),
        (JobState.QUEUED, 0),
        (JobState.QUEUED, 0),
        (JobState.QUEUED, 5),
    ]
    assert ivr(settings, "jobs", "retry", "--all-failed").output == "no failed jobs to retry\n"


def test_retry_refuses_running_done_and_unknown_jobs(settings, database):
    running = add_job(database, "download_recording", 1, state=JobState.RUNNING, owner="web-1:77")
    done = add_job(database, "download_recording", 2, state=JobState.DONE)
    for args, message in (
        ([str(running)], f"job {running} is running (on web-1:77); it cannot be retried now"),
        ([str(done)], f"job {done} is already done; there is nothing to retry"),
        (["99"], "no job 99 (see `ivr jobs list`)"),
    ):
        result = ivr(settings, "jobs", "retry", *args)
        assert result.exit_code == 1 and message in result.output, result.output
    assert ivr(settings, "jobs", "retry").exit_code == 2
    assert ivr(settings, "jobs", "retry", str(done), "--all-failed").exit_code == 2
    with database.session() as session:
        assert session.get(Job, running).state == JobState.RUNNING


def test_retry_without_a_reachable_queue_leaves_the_job_to_the_sweep(settings, database):
    job_id = add_job(database, "notify_sms", 1, state=JobState.FAILED, attempts=60)
    result = CliRunner().invoke(
        main, ["jobs", "retry", str(job_id)], obj=CliState(settings.replace(redis_url="redis://127.0.0.1:1/0"))
    )
    assert result.exit_code == 0, result.output
    assert "the periodic sweep will pick them up" in result.output
    with database.session() as session:
        assert session.get(Job, job_id).state == JobState.QUEUED
