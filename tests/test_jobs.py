"""The job queue: kinds declared with @job and known to every process, and surviving crashes: leases and
their renewal, the sweep, dead workers re-queued at start-up, attempts checked at claim, and a backoff that
spreads the retries over a day."""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from ivr.db import utcnow
from ivr.job_modules import JOB_MODULES
from ivr.jobs import (
    RETRY_BASE_SECONDS,
    RETRY_CAP_SECONDS,
    JobQueue,
    LeaseRenewal,
    job,
    job_kind,
    registered_kinds,
    retry_delay,
    retry_schedule,
    worker_identity,
)
from ivr.jobs_cli import SUBJECTS
from ivr.models import JOB_MAX_ATTEMPTS, Job, JobState, RecordingState

REPO = Path(__file__).resolve().parent.parent


def add_job(database, kind: str, subject_id: int = 1, **fields) -> int:
    with database.session() as session:
        job = Job(kind=kind, subject_id=subject_id, **{"state": JobState.QUEUED, **fields})
        session.add(job)
        session.flush()
        return job.id


def job_row(database, job_id: int) -> Job:
    with database.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def dead_pid() -> int:
    """The id of a process that has just exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# The registry --------------------------------------------------------------------------------------------------


def declares_a_job(decorator: ast.expr) -> bool:
    """`@job(…)` or `@periodic(…)`, also spelled `@jobs.job(…)`."""
    if not isinstance(decorator, ast.Call):
        return False
    called = decorator.func
    name = called.id if isinstance(called, ast.Name) else called.attr if isinstance(called, ast.Attribute) else None
    return name in ("job", "periodic")


def modules_that_declare_jobs() -> set[str]:
    """Every module under ivr/ with a function declared a job or periodic task, read from the source."""
    found = set()
    for path in (REPO / "ivr").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                declares_a_job(decorator) for decorator in node.decorator_list
            ):
                found.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


def test_every_module_that_declares_a_job_is_in_the_job_modules_list():
    declaring = modules_that_declare_jobs()
    assert {"ivr.recordings.download", "ivr.recordings.reconcile"} <= declaring  # the scan sees decorators
    assert {module.__name__ for module in JOB_MODULES} == declaring


FRESH_APP = textwrap.dedent("""
    import json
    from ivr import create_app
    from ivr.jobs import periodic_tasks, registered_kinds

    create_app(with_queue=False)
    print(json.dumps({"kinds": sorted(registered_kinds()), "periodic": sorted(periodic_tasks())}))
""")


def test_a_fresh_process_knows_every_kind_the_jobs_table_names_once_it_builds_the_app(settings_environ):
    done = subprocess.run(
        [sys.executable, "-c", FRESH_APP],
        cwd=REPO,
        env={**os.environ, **settings_environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    known = json.loads(done.stdout.splitlines()[-1])
    assert known["kinds"] == sorted(SUBJECTS)  # `ivr jobs list` names the subject of every kind there is
    assert known["periodic"] == ["follow_up_calls", "reconcile_recordings"]


def test_a_kind_is_declared_once_and_a_test_kind_is_gone_after_its_test(declare_job):
    with pytest.raises(ValueError, match="'download_recording' is already declared"):
        job("download_recording", give_up=lambda context, subject_id, error: None)(lambda context, subject_id: None)
    real = job_kind("download_recording")
    stand_in = declare_job("download_recording", lambda context, subject_id: None, replacing=True)
    throwaway = declare_job("throwaway", lambda context, subject_id: None)
    assert job_kind("download_recording") is stand_in and job_kind("throwaway") is throwaway
    assert real is not None and real.run.__module__ == "ivr.recordings.download"


def test_the_registry_is_as_it_was_after_a_test_that_declared_kinds():
    kinds = registered_kinds()
    assert "throwaway" not in kinds and sorted(kinds) == sorted(SUBJECTS)
    assert kinds["download_recording"].run.__module__ == "ivr.recordings.download"


def test_scheduling_through_the_handle_makes_one_row_per_kind_and_subject(database):
    from ivr.recordings.download import download_recording
    from ivr.recordings.transcribe import transcribe_recording

    with database.session() as session:
        first = download_recording.schedule(session, 7)
        assert first is not None
        assert download_recording.schedule(session, 7) is None  # it exists
        other = transcribe_recording.schedule(session, 7)
        rows = session.execute(select(Job.id, Job.kind, Job.subject_id, Job.state).order_by(Job.id)).all()
        assert [tuple(row) for row in rows] == [
            (first, "download_recording", 7, JobState.QUEUED),
            (other, "transcribe_recording", 7, JobState.QUEUED),
        ]
        assert session.info["jobs_to_enqueue"] == [first, other]  # scheduled again: not queued again


# Backoff ------------------------------------------------------------------------------------------------------


def test_sixty_attempts_with_the_production_backoff_span_more_than_a_day():
    gaps = retry_schedule(JOB_MAX_ATTEMPTS)  # the production defaults: 10 s doubling, at most 30 min
    assert len(gaps) == JOB_MAX_ATTEMPTS - 1 == 59
    assert sum(gaps) >= 24 * 3600, f"retries end after {sum(gaps) / 3600:.1f} h"
    assert max(gaps) <= 30 * 60
    assert gaps[:4] == [10, 20, 40, 80]


def test_retry_delay_doubles_from_the_base_and_stops_at_the_cap():
    assert (RETRY_BASE_SECONDS, RETRY_CAP_SECONDS) == (10, 1800)
    assert [retry_delay(n) for n in (1, 2, 8, 9, 59)] == [10, 20, 1280, 1800, 1800]
    assert [retry_delay(n, base=0.05, cap=0.2) for n in (1, 2, 3, 4, 60)] == [0.05, 0.1, 0.2, 0.2, 0.2]
    with pytest.raises(ValueError, match="from 1"):
        retry_delay(0)


def test_a_queue_built_without_options_uses_the_production_backoff_and_lease(settings, database):
    queue = JobQueue(settings, database)
    assert [queue.retry_delay(n) for n in (1, 2, 20)] == [10, 20, 1800]
    assert (queue.lease_seconds, queue.lease_renew_seconds) == (30, 10)
    with pytest.raises(ValueError, match="must outlast its renewal"):
        JobQueue(settings, database, lease_seconds=1, lease_renew_seconds=1)


def test_a_failed_attempt_is_retried_after_the_queues_backoff(settings, database, declare_job):
    def fail(context, subject_id):
        raise RuntimeError("Twilio is down")

    declare_job("always_fails", fail)
    queue = JobQueue(settings, database, retry_base_seconds=40, retry_cap_seconds=60)
    job_id = add_job(database, "always_fails")
    for attempt, wait in ((1, 40), (2, 60), (3, 60)):
        before = utcnow()
        queue.run_job(job_id)
        job = job_row(database, job_id)
        assert (job.state, job.attempts, job.owner, job.lease_expires_at) == (JobState.QUEUED, attempt, None, None)
        assert "RuntimeError: Twilio is down" in (job.last_error or "")
        assert timedelta(seconds=wait - 1) < job.run_after - before < timedelta(seconds=wait + 1)


# Leases -------------------------------------------------------------------------------------------------------


def test_a_claim_takes_a_lease_in_this_processes_name(settings, database, declare_job):
    seen: list[Job] = []
    declare_job("look", lambda context, subject_id: seen.append(job_row(database, job_id)))
    queue = JobQueue(settings, database, lease_seconds=7, lease_renew_seconds=5)
    job_id = add_job(database, "look")
    before = utcnow()
    queue.run_job(job_id)
    [running] = seen
    assert running.state == JobState.RUNNING and running.owner == f"{socket.gethostname()}:{os.getpid()}"
    assert running.lease_expires_at is not None
    assert timedelta(seconds=6) < running.lease_expires_at - before < timedelta(seconds=8)
    done = job_row(database, job_id)
    assert (done.state, done.attempts, done.lease_expires_at) == (JobState.DONE, 1, None)


def test_a_long_job_that_renews_its_lease_runs_exactly_once_while_the_sweep_runs(settings, database, declare_job):
    runs: list[float] = []

    def slow(context, subject_id):
        runs.append(time.monotonic())
        time.sleep(1.6)  # more than three leases

    declare_job("slow", slow)
    queue = JobQueue(settings, database, lease_seconds=0.5, lease_renew_seconds=0.1)
    job_id = add_job(database, "slow")
    stop = threading.Event()
    requeued: list[int] = []

    def sweep_all_the_time():
        while not stop.wait(0.05):
            requeued.append(queue.sweep())

    sweeper = threading.Thread(target=sweep_all_the_time)
    queue.start_embedded(workers=2)  # a second worker is idle, ready to take a re-queued job
    sweeper.start()
    try:
        queue.enqueue(job_id)
        time.sleep(2.4)
        assert queue.wait_idle(timeout=10)
    finally:
        stop.set()
        sweeper.join()
        queue.stop_embedded()
    job = job_row(database, job_id)
    assert len(runs) == 1, f"ran {len(runs)} times"
    assert (job.state, job.attempts) == (JobState.DONE, 1)
    assert len(requeued) > 20 and sum(requeued) == 0  # the sweep kept looking and never took it


def test_renewal_stops_once_another_worker_holds_the_job(settings, database):
    job_id = add_job(
        database, "anything", state=JobState.RUNNING, owner="here:1", lease_expires_at=utcnow() + timedelta(seconds=5)
    )
    renewal = LeaseRenewal(database, job_id, "here:1", lease=60, interval=1)
    assert renewal.renew()
    assert job_row(database, job_id).lease_expires_at > utcnow() + timedelta(seconds=50)
    with database.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(owner="there:2"))
    assert not renewal.renew()
    assert job_row(database, job_id).owner == "there:2"


def test_the_sweep_requeues_only_running_jobs_whose_lease_ran_out(settings, database):
    queue = JobQueue(settings, database, lease_seconds=30, lease_renew_seconds=10)
    now = utcnow()
    expired = add_job(
        database,
        "a",
        state=JobState.RUNNING,
        owner="elsewhere:1",
        started_at=now,
        lease_expires_at=now - timedelta(seconds=1),
    )
    renewed = add_job(
        database,
        "b",
        state=JobState.RUNNING,
        owner="elsewhere:2",
        started_at=now - timedelta(hours=2),
        lease_expires_at=now + timedelta(seconds=20),
    )
    from_before_leases = add_job(database, "c", state=JobState.RUNNING, started_at=now - timedelta(minutes=5))
    assert queue.sweep() == 2
    assert [job_row(database, i).state for i in (expired, renewed, from_before_leases)] == [
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.QUEUED,
    ]
    assert job_row(database, expired).owner is None


# Dead workers and their last attempt ----------------------------------------------------------------------------


def test_jobs_of_dead_processes_on_this_host_are_requeued_at_once(settings, database):
    host = socket.gethostname()
    lease = utcnow() + timedelta(minutes=5)  # far from running out
    gone = add_job(database, "a", state=JobState.RUNNING, owner=f"{host}:{dead_pid()}", lease_expires_at=lease)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        living = add_job(database, "b", state=JobState.RUNNING, owner=f"{host}:{alive.pid}", lease_expires_at=lease)
        foreign = add_job(
            database, "c", state=JobState.RUNNING, owner=f"other-host:{dead_pid()}", lease_expires_at=lease
        )
        earlier_me = add_job(
            database,
            "d",
            state=JobState.RUNNING,
            owner=worker_identity(),
            started_at=utcnow() - timedelta(minutes=1),
            lease_expires_at=lease,
        )
        queue = JobQueue(settings, database)
        mine_now = add_job(
            database, "e", state=JobState.RUNNING, owner=worker_identity(), started_at=utcnow(), lease_expires_at=lease
        )
        assert sorted(queue.requeue_jobs_of_dead_workers()) == [gone, earlier_me]
        states = [job_row(database, i).state for i in (gone, living, foreign, earlier_me, mine_now)]
        assert states == [JobState.QUEUED, JobState.RUNNING, JobState.RUNNING, JobState.QUEUED, JobState.RUNNING]
        assert len(queue.huey) == 2  # both on their way to a worker
    finally:
        alive.kill()
        alive.wait()


CRASHING_WORKER = textwrap.dedent("""
    import os, sys
    import ivr.jobs as jobs
    from ivr.config import load_settings
    from ivr.db import Database

    jobs.job("crash", give_up=print)(lambda context, subject: os._exit(3))
    settings = load_settings()
    jobs.JobQueue(settings, Database(settings.database_url)).run_job(int(sys.argv[1]))
""")


def test_a_job_that_kills_its_worker_is_retried_then_given_up_with_the_reason(
    settings, settings_environ, database, declare_job
):
    given_up: list[tuple[int, str]] = []
    declare_job(
        "crash",
        lambda context, subject_id: os._exit(3),
        give_up=lambda context, subject_id, error: given_up.append((subject_id, error)),
    )
    job_id = add_job(database, "crash", subject_id=77, max_attempts=2)
    queue = JobQueue(settings, database)

    def worker_runs_it() -> None:
        done = subprocess.run(
            [sys.executable, "-c", CRASHING_WORKER, str(job_id)],
            cwd=REPO,
            env={**os.environ, **settings_environ},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 3, done.stderr

    worker_runs_it()
    left = job_row(database, job_id)
    assert (left.state, left.attempts) == (JobState.RUNNING, 1) and left.owner.startswith(socket.gethostname())
    assert queue.requeue_jobs_of_dead_workers() == [job_id]  # what `ivr serve` / `ivr worker` do at start-up
    worker_runs_it()
    assert job_row(database, job_id).attempts == 2
    assert queue.requeue_jobs_of_dead_workers() == [job_id]
    queue.run_job(job_id)  # the third claim: no attempts left
    job = job_row(database, job_id)
    reason = "gave up after 2 attempts (the worker stopped during the last one)"
    assert (job.state, job.attempts, job.last_error) == (JobState.FAILED, 2, reason)
    assert given_up == [(77, reason)]


def test_a_download_with_no_attempts_left_is_not_fetched_again(
    app, client, settings, database, queue, recording_server
):
    from tests.test_recording_download import CALL_SID, RECORDING_SID, report_recording, stored

    url = recording_server.add(RECORDING_SID, b"RIFF", call_sid=CALL_SID)
    report_recording(client, settings, url)
    _, job = stored(database)
    with database.session() as session:  # its third and last attempt took the worker down with it
        session.execute(update(Job).values(attempts=3, max_attempts=3))
    queue.run_job(job.id)
    recording, job = stored(database)
    assert job.state == JobState.FAILED and recording_server.fetch_count(RECORDING_SID) == 0
    assert recording.state == RecordingState.FAILED  # the give-up hook ran: the ticket says why
    assert recording.error == "gave up after 3 attempts (the worker stopped during the last one)"


def test_serve_requeues_the_jobs_of_a_dead_worker_before_it_starts_serving(settings, database, monkeypatch):
    from click.testing import CliRunner

    import ivr.server
    from ivr.cli import main
    from ivr.cli_state import CliState

    job_id = add_job(
        database,
        "no_such_kind",
        state=JobState.RUNNING,
        owner=f"{socket.gethostname()}:{dead_pid()}",
        lease_expires_at=utcnow() + timedelta(minutes=5),
    )
    seen: list[JobState] = []

    def fake_serve(start, *, stop, **options):  # the server's worker process, about to answer
        app = start()
        queue = app.extensions["ivr.queue"]
        assert queue.wait_idle(timeout=10)
        seen.append(job_row(database, job_id).state)
        stop()

    monkeypatch.setattr(ivr.server, "serve_wsgi", fake_serve)
    result = CliRunner().invoke(main, ["serve"], obj=CliState(settings))
    assert result.exit_code == 0, result.output
    assert seen == [JobState.FAILED]  # re-queued at start-up and run by the embedded worker at once
    assert "unknown job kind 'no_such_kind'" in (job_row(database, job_id).last_error or "")


def test_worker_requeues_the_jobs_of_a_dead_worker_before_it_consumes(settings, database, monkeypatch):
    from click.testing import CliRunner

    from ivr.cli import main
    from ivr.cli_state import CliState

    job_id = add_job(
        database,
        "a",
        state=JobState.RUNNING,
        owner=f"{socket.gethostname()}:{dead_pid()}",
        lease_expires_at=utcnow() + timedelta(minutes=5),
    )
    states: list[JobState] = []
    monkeypatch.setattr(JobQueue, "run_worker", lambda self, workers: states.append(job_row(database, job_id).state))
    monkeypatch.setattr(JobQueue, "enqueue", lambda self, job_id, delay=0: True)  # no Redis here
    result = CliRunner().invoke(main, ["worker"], obj=CliState(settings.replace(redis_url="redis://127.0.0.1:1/0")))
    assert result.exit_code == 0, result.output
    assert states == [JobState.QUEUED]
