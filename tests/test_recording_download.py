"""The download job: byte-exact storage, retries with backoff, refusals, give-up, the sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from ivr.db import utcnow
from ivr.jobs import JobQueue
from ivr.models import Job, JobState, Recording, RecordingState
from ivr.recordings.download import checked_media_url
from tests.factories import HELLO_WAV, post_recording_completed, sha256_of

CALL_SID = "CA" + "5" * 32
RECORDING_SID = "RE" + "5" * 32


def report_recording(client, settings, url: str, sid: str = RECORDING_SID) -> None:
    """Twilio's recording status callback saying the message is complete."""
    assert post_recording_completed(client, settings, CALL_SID, sid, url).status_code == 200


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


def limit_attempts(database, attempts: int) -> None:
    """Give the queued jobs a small budget (production's 60 tries take a day), before a worker starts."""
    with database.session() as session:
        session.execute(update(Job).where(Job.state == JobState.QUEUED).values(max_attempts=attempts))


def run_until_idle(queue: JobQueue, timeout: float = 20) -> None:
    queue.start_embedded()
    try:
        assert queue.wait_idle(timeout=timeout)
    finally:
        queue.stop_embedded()


def test_a_download_that_keeps_failing_gives_up_and_says_why(client, settings, database, queue, recording_server):
    url = recording_server.add(RECORDING_SID, HELLO_WAV, call_sid=CALL_SID)
    recording_server.fail_next(RECORDING_SID, times=100, status=404)
    report_recording(client, settings, url)  # queued; no worker is consuming yet
    limit_attempts(database, 4)
    run_until_idle(queue)
    recording, job = stored(database)
    assert (job.state, job.attempts, job.max_attempts) == (JobState.FAILED, 4, 4)
    assert recording_server.fetch_count(RECORDING_SID) == 4  # every attempt was a real fetch, none more
    assert recording.state == RecordingState.FAILED and "HTTP 404" in (recording.error or "")
    assert recording.ticket_id is not None  # the ticket still lists the message Twilio holds


def test_wrong_credentials_are_not_accepted_by_the_recording_host(client, settings, database, queue, recording_server):
    recording_server.auth_token = "rotated"
    url = recording_server.add(RECORDING_SID, HELLO_WAV, call_sid=CALL_SID)
    report_recording(client, settings, url)
    limit_attempts(database, 3)
    run_until_idle(queue)
    recording, job = stored(database)
    assert (job.state, job.attempts) == (JobState.FAILED, 3)
    assert recording.state == RecordingState.FAILED and "HTTP 401" in (recording.error or "")
    assert recording_server.fetch_count(RECORDING_SID) == 0  # the host never accepted our credentials


def test_a_recording_on_a_host_not_allowed_is_refused_at_once(client, settings, database, worker):
    report_recording(client, settings, "https://attacker.example/2010-04-01/Accounts/AC/Recordings/" + RECORDING_SID)
    assert worker.wait_idle(timeout=20)
    recording, job = stored(database)
    assert (job.state, job.attempts) == (JobState.FAILED, 1)
    assert "not in IVR_RECORDING_HOSTS" in (recording.error or "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1.wav",
        ),
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1.mp3?x=1",
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1.wav",
        ),
        ("http://127.0.0.1:8000/r/RE1", "http://127.0.0.1:8000/r/RE1.wav"),
    ],
)
def test_media_url_is_the_wav_on_an_allowed_host(url, expected):
    assert checked_media_url(url, ("api.twilio.com", "127.0.0.1")) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://api.twilio.com/x/RE1",
        "https://api.twilio.com.evil.example/RE1",
        "file:///etc/passwd",
        "https://user@evil.example/RE1",
    ],
)
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


def test_the_sweep_requeues_a_job_whose_lease_ran_out(client, settings, database, queue, recording_server):
    url = recording_server.add(RECORDING_SID, HELLO_WAV, call_sid=CALL_SID)
    report_recording(client, settings, url)  # queued; no worker is consuming yet
    with database.session() as session:  # as if a worker on another host died mid-job a minute ago
        session.execute(
            update(Job).values(
                state=JobState.RUNNING,
                attempts=1,
                owner="elsewhere:4242",
                started_at=utcnow() - timedelta(minutes=1),
                lease_expires_at=utcnow() - timedelta(seconds=1),
            )
        )
    queue.huey.flush()  # and the queue lost its message
    assert queue.sweep() == 1
    run_until_idle(queue)
    recording, job = stored(database)
    assert recording.state == RecordingState.STORED and (job.state, job.attempts) == (JobState.DONE, 2)


def test_jobs_scheduled_in_a_rolled_back_transaction_are_not_queued(app, database, queue: JobQueue):
    from ivr.recordings.download import download_recording

    session = database.sessionmaker()
    download_recording.schedule(session, 999)
    session.rollback()
    session.close()
    assert len(queue.huey) == 0


# Streaming to disk: flat memory, a size cap, truncation ------------------------------------------------------


@pytest.fixture
def streaming_server():
    from tests.streaming_http import running_streaming_server

    with running_streaming_server() as server:
        yield server


def write_wav(path, data_bytes: int, *, rate: int = 8000, channels: int = 1) -> str:
    """A 16-bit PCM WAV of `data_bytes` bytes of noise, written 1 MiB at a time; returns its SHA-256."""
    import hashlib
    import os
    import struct

    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    digest = hashlib.sha256(header)
    with open(path, "wb") as out:
        out.write(header)
        left = data_bytes
        while left:
            block = os.urandom(min(left, 1 << 20))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def run_download_here(database, queue: JobQueue) -> tuple[Recording, Job]:
    """Run the queued download job in this thread (no worker), then read back what it stored."""
    _, job = stored(database)
    queue.run_job(job.id)
    return stored(database)


def leftover_parts(settings) -> list[str]:
    return [path.name for path in settings.recordings_dir.rglob(".part-*")]


def test_a_large_recording_streams_to_disk_byte_exact_with_flat_memory(
    client, settings, database, queue, streaming_server, tmp_path
):
    import tracemalloc

    from tests.streaming_http import Reply

    size = 50 * 1024 * 1024
    body = tmp_path / "long.wav"
    expected_sha = write_wav(body, size, channels=2)
    url = streaming_server.serve(f"/rec/{RECORDING_SID}.wav", Reply(body))
    report_recording(client, settings, url.removesuffix(".wav"))
    tracemalloc.start()
    try:
        recording, job = run_download_here(database, queue)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"download of {body.stat().st_size:,} bytes: tracemalloc peak {peak:,} bytes")
    assert (job.state, recording.state) == (JobState.DONE, RecordingState.STORED), recording.error
    assert peak < 4 * 1024 * 1024, f"peak {peak:,} bytes for a {size:,}-byte body"
    stored_file = settings.recordings_dir / recording.path
    assert recording.sha256 == expected_sha == sha256_of(stored_file)
    assert recording.size == stored_file.stat().st_size == body.stat().st_size
    assert (recording.channels, recording.duration) == (2, pytest.approx(size / (8000 * 2 * 2)))  # from the header
    assert leftover_parts(settings) == []


def test_a_recording_announced_larger_than_the_limit_is_refused_before_it_is_read(
    client, settings, database, streaming_server, tmp_path
):
    from ivr import create_app
    from tests.streaming_http import Reply

    body = tmp_path / "big.wav"
    write_wav(body, 200_000)
    app = create_app(settings.replace(max_recording_bytes=100_000))
    queue = app.extensions["ivr.queue"]
    url = streaming_server.serve(f"/rec/{RECORDING_SID}.wav", Reply(body))
    report_recording(app.test_client(), settings, url.removesuffix(".wav"))
    recording, job = run_download_here(database, queue)
    assert (job.state, job.attempts) == (JobState.FAILED, 1)  # permanent: no retries
    assert recording.state == RecordingState.FAILED
    assert recording.error and recording.error.endswith(
        "recording is larger than IVR_MAX_RECORDING_BYTES (100000 bytes); refusing to store it (Content-Length 200044)"
    )
    assert leftover_parts(settings) == [] and not list(settings.recordings_dir.rglob("*.wav"))
    app.extensions["ivr.database"].dispose()


def test_a_recording_without_a_length_is_counted_and_refused_past_the_limit(
    client, settings, database, streaming_server, tmp_path
):
    from ivr import create_app
    from tests.streaming_http import Reply

    body = tmp_path / "big.wav"
    write_wav(body, 500_000)
    app = create_app(settings.replace(max_recording_bytes=300_000))
    queue = app.extensions["ivr.queue"]
    url = streaming_server.serve(f"/rec/{RECORDING_SID}.wav", Reply(body, mode="chunked"))
    report_recording(app.test_client(), settings, url.removesuffix(".wav"))
    recording, job = run_download_here(database, queue)
    assert (job.state, job.attempts) == (JobState.FAILED, 1)
    assert "recording is larger than IVR_MAX_RECORDING_BYTES (300000 bytes); refusing to store it" in recording.error
    assert leftover_parts(settings) == [] and not list(settings.recordings_dir.rglob("*.wav"))
    app.extensions["ivr.database"].dispose()


def test_a_chunked_recording_within_the_limit_is_stored_byte_exact(
    client, settings, database, queue, streaming_server, tmp_path
):
    from tests.streaming_http import Reply

    body = tmp_path / "chunked.wav"
    expected_sha = write_wav(body, 300_000)
    url = streaming_server.serve(f"/rec/{RECORDING_SID}.wav", Reply(body, mode="chunked"))
    report_recording(client, settings, url.removesuffix(".wav"))
    recording, job = run_download_here(database, queue)
    assert job.state == JobState.DONE and recording.sha256 == expected_sha and recording.size == 300_044


def test_a_download_cut_short_is_retried_and_leaves_no_partial_file(
    client, settings, database, queue, streaming_server, tmp_path
):
    from tests.streaming_http import Reply

    body = tmp_path / "cut.wav"
    expected_sha = write_wav(body, 400_000)
    url = streaming_server.serve(f"/rec/{RECORDING_SID}.wav", Reply(body, mode="short"), Reply(body))
    report_recording(client, settings, url.removesuffix(".wav"))
    recording, job = run_download_here(database, queue)
    assert (job.state, job.attempts) == (JobState.QUEUED, 1)  # worth retrying
    assert "truncated download" in (job.last_error or "") and "of 400044 bytes" in job.last_error
    assert leftover_parts(settings) == [] and not list(settings.recordings_dir.rglob("*.wav"))
    run_until_idle(queue)
    recording, job = stored(database)
    assert (job.state, job.attempts) == (JobState.DONE, 2) and recording.sha256 == expected_sha
