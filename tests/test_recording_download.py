"""The download job: byte-exact storage, retries with backoff, refusals, give-up, the sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ivr.db import utcnow
from ivr.jobs import JobQueue
from ivr.models import Job, JobState, Recording, RecordingState
from ivr.recordings.download import checked_media_url
from tests.factories import HELLO_WAV, call_params, sha256_of, signed_post

CALL_SID = "CA" + "5" * 32
RECORDING_SID = "RE" + "5" * 32


def report_recording(client, settings, url: str, sid: str = RECORDING_SID) -> None:
    """Twilio's recording status callback saying the message is complete."""
    params = call_params(CALL_SID, RecordingSid=sid, RecordingUrl=url, RecordingStatus="completed",
                         RecordingDuration="2", RecordingChannels="1", RecordingSource="RecordVerb")
    assert signed_post(client, settings, "/twilio/recording-status", params).status_code == 200


def stored(database, sid: str = RECORDING_SID) -> tuple[Recording, Job]:
    with database.session() as session:
        recording = session.scalars(select(Recording).where(Recording.recording_sid == sid)).one()
        job = session.scalars(select(Job).where(Job.subject_id == recording.id, Job.kind == "download_recording")).one()
        return recording, job


def test_transient_errors_are_retried_until_the_bytes_arrive(client, settings, database, worker, recording_server):
    url = recording_server.add(RECORDING_SID, HELLO_WAV, call_sid=CALL_SID)
    recording_server.fail_next(RECORDING_SID, times=2, status=500)
    report_recording(client, settings, url)
    assert worker.wait_idle(timeout=20)
    recording, job = stored(database)
    assert recording.state == RecordingState.STORED and recording.sha256 == sha256_of(HELLO_WAV)
    assert (job.state, job.attempts) == (JobState.DONE, 3)
    assert recording_server.fetch_count(RECORDING_SID) == 3


def test_a_download_that_keeps_failing_gives_up_and_says_why(client, settings, database, worker, recording_server):
    url = recording_server.add(RECORDING_SID, HELLO_WAV, call_sid=CALL_SID)
    recording_server.fail_next(RECORDING_SID, times=100, status=404)
    report_recording(client, settings, url)
    assert worker.wait_idle(timeout=30)
    recording, job = stored(database)
    assert job.state == JobState.FAILED and job.attempts == job.max_attempts
    assert recording.state == RecordingState.FAILED and "HTTP 404" in (recording.error or "")
    assert recording.ticket_id is not None  # the ticket still lists the message Twilio holds


def test_wrong_credentials_are_not_accepted_by_the_recording_host(client, settings, database, worker, recording_server):
    recording_server.auth_token = "rotated"
    url = recording_server.add(RECORDING_SID, HELLO_WAV, call_sid=CALL_SID)
    report_recording(client, settings, url)
    assert worker.wait_idle(timeout=30)
    recording, _ = stored(database)
    assert recording.state == RecordingState.FAILED and "HTTP 401" in (recording.error or "")


def test_a_recording_on_a_host_not_allowed_is_refused_at_once(client, settings, database, worker):
    report_recording(client, settings, "https://attacker.example/2010-04-01/Accounts/AC/Recordings/" + RECORDING_SID)
    assert worker.wait_idle(timeout=20)
    recording, job = stored(database)
    assert (job.state, job.attempts) == (JobState.FAILED, 1)
    assert "not in IVR_RECORDING_HOSTS" in (recording.error or "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1", "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1.wav"),
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1.mp3?x=1", "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1.wav"),
        ("http://127.0.0.1:8000/r/RE1", "http://127.0.0.1:8000/r/RE1.wav"),
    ],
)
def test_media_url_is_the_wav_on_an_allowed_host(url, expected):
    assert checked_media_url(url, ("api.twilio.com", "127.0.0.1")) == expected


@pytest.mark.parametrize("url", ["http://api.twilio.com/x/RE1", "https://api.twilio.com.evil.example/RE1",
                                 "file:///etc/passwd", "https://user@evil.example/RE1"])
def test_media_url_refuses_plain_http_and_foreign_hosts(url):
    from ivr.jobs import PermanentJobError

    with pytest.raises(PermanentJobError):
        checked_media_url(url, ("api.twilio.com", "127.0.0.1"))


def test_a_second_completed_callback_does_not_download_twice(client, settings, database, worker, recording_server):
    url = recording_server.add(RECORDING_SID, HELLO_WAV, call_sid=CALL_SID)
    report_recording(client, settings, url)
    assert worker.wait_idle(timeout=20)
    report_recording(client, settings, url)
    assert worker.wait_idle(timeout=20)
    assert recording_server.fetch_count(RECORDING_SID) == 1


def test_the_sweep_requeues_a_job_stuck_after_a_crash(client, settings, database, queue, recording_server):
    url = recording_server.add(RECORDING_SID, HELLO_WAV, call_sid=CALL_SID)
    report_recording(client, settings, url)  # queued; no worker is consuming yet
    with database.session() as session:  # as if a worker died mid-job an hour ago
        session.execute(update(Job).values(state=JobState.RUNNING, started_at=utcnow() - timedelta(hours=1)))
    queue.huey.flush()  # and the queue lost its message
    assert queue.sweep() == 1
    queue.start_embedded()
    try:
        assert queue.wait_idle(timeout=20)
    finally:
        queue.stop_embedded()
    recording, job = stored(database)
    assert recording.state == RecordingState.STORED and job.state == JobState.DONE


def test_jobs_scheduled_in_a_rolled_back_transaction_are_not_queued(app, database, queue: JobQueue):
    from ivr.jobs import schedule_job

    session = database.sessionmaker()
    schedule_job(session, "download_recording", 999)
    session.rollback()
    session.close()
    assert len(queue.huey) == 0
