"""Background jobs: each is a database row (queued → running → done | failed); Huey carries its id.

The queue is SQLite-backed and consumed inside `ivr serve` by default, or Redis-backed and consumed
by `ivr worker` processes when IVR_REDIS_URL is set. A sweep re-queues jobs lost in a crash.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey
from huey.consumer import Consumer
from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.db import Database, utcnow
from ivr.models import Job, JobState

log = logging.getLogger(__name__)

STUCK_RUNNING_AFTER = timedelta(minutes=15)
LOST_QUEUED_AFTER = timedelta(minutes=2)
POLL_CEILING_SECONDS = 0.1


class PermanentJobError(Exception):
    """A failure that retrying cannot fix (e.g. a recording URL on a host we refuse)."""


@dataclass(frozen=True)
class JobContext:
    """What a job handler may use."""

    settings: Settings
    database: Database


JobHandler = Callable[[JobContext, int], None]


@dataclass(frozen=True)
class JobKind:
    """How to run one kind of job, and what to do when it finally fails."""

    run: JobHandler
    give_up: Callable[[JobContext, int, str], None]


def job_kinds() -> dict[str, JobKind]:
    """Every job kind by name (imported here to keep the queue free of domain imports at load)."""
    from ivr.notifications import SMS_JOB, send_notice_sms, sms_failed
    from ivr.qa.evaluations import evaluate_call_job, evaluation_failed
    from ivr.recordings.download import download_recording, recording_download_failed
    from ivr.recordings.transcribe import transcribe_recording, transcription_failed

    return {
        "download_recording": JobKind(download_recording, recording_download_failed),
        "transcribe_recording": JobKind(transcribe_recording, transcription_failed),
        SMS_JOB: JobKind(send_notice_sms, sms_failed),
        "evaluate_call": JobKind(evaluate_call_job, evaluation_failed),
    }


def schedule_job(session: Session, kind: str, subject_id: int) -> Job:
    """Create the job row (once per kind and subject); it is queued when the session commits."""
    job = session.scalars(select(Job).where(Job.kind == kind, Job.subject_id == subject_id)).one_or_none()
    if job is None:
        job = Job(kind=kind, subject_id=subject_id, state=JobState.QUEUED)
        try:
            with session.begin_nested():
                session.add(job)
        except IntegrityError:  # another request scheduled it first
            return session.scalars(select(Job).where(Job.kind == kind, Job.subject_id == subject_id)).one()
    session.info.setdefault("jobs_to_enqueue", []).append(job.id)
    return job


def make_huey(settings: Settings) -> Huey:
    """The Huey instance for these settings: Redis when configured, else a SQLite file."""
    if settings.redis_url:
        # BRPOP: a worker takes a new job the moment it is queued.
        return RedisHuey("ivr", url=settings.redis_url, blocking=True, read_timeout=1)
    assert settings.huey_path is not None
    settings.huey_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("ivr", filename=str(settings.huey_path))


class _EmbeddedConsumer(Consumer):
    """A consumer run inside another program, which keeps its own signal handling."""

    def _set_signal_handlers(self) -> None:
        pass


class JobQueue:
    """Runs job rows through Huey. One per process; bound to one database."""

    def __init__(self, settings: Settings, database: Database, *, retry_base_seconds: float = 1.0) -> None:
        self.context = JobContext(settings, database)
        self.retry_base_seconds = retry_base_seconds
        self.huey = make_huey(settings)
        self._run_task = self.huey.task(name="run_job")(self.run_job)
        self.huey.periodic_task(crontab(minute="*"), name="sweep_jobs")(self.sweep)
        self._consumer: Consumer | None = None
        event.listen(database.sessionmaker, "after_commit", self._enqueue_committed)
        event.listen(database.sessionmaker, "after_rollback", self._forget_rolled_back)

    @property
    def backend(self) -> str:
        return "redis" if self.context.settings.redis_url else "sqlite"

    def _enqueue_committed(self, session: Session) -> None:
        for job_id in session.info.pop("jobs_to_enqueue", []):
            self.enqueue(job_id)

    def _forget_rolled_back(self, session: Session) -> None:
        session.info.pop("jobs_to_enqueue", None)

    def enqueue(self, job_id: int, delay: float = 0) -> None:
        """Put a job id on the queue; a failure here is logged and left to the sweep."""
        try:
            if delay:
                self._run_task.schedule((job_id,), delay=delay)
            else:
                self._run_task(job_id)
        except Exception:
            log.exception("could not enqueue job %s; the sweep will pick it up", job_id)

    def run_job(self, job_id: int) -> None:
        """Claim the job row, run its handler, record the outcome (retry with backoff or give up)."""
        database = self.context.database
        with database.session() as session:
            claimed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == JobState.QUEUED)
                .values(state=JobState.RUNNING, attempts=Job.attempts + 1, started_at=utcnow())
                .returning(Job.id)
            ).first()
            job = session.get(Job, job_id)
        if not claimed or job is None:
            return  # already taken by another worker, done, or gone
        kind = job_kinds().get(job.kind)
        try:
            if kind is None:
                raise PermanentJobError(f"unknown job kind {job.kind!r}")
            kind.run(self.context, job.subject_id)
        except Exception as exc:
            self._record_failure(job, kind, exc)
        else:
            with database.session() as session:
                session.execute(
                    update(Job).where(Job.id == job_id).values(state=JobState.DONE, finished_at=utcnow())
                )

    def _record_failure(self, job: Job, kind: JobKind | None, exc: Exception) -> None:
        error = "".join(traceback.format_exception_only(exc)).strip()
        final = isinstance(exc, PermanentJobError) or job.attempts >= job.max_attempts
        log.warning("job %s (%s #%s) attempt %s failed: %s", job.id, job.kind, job.subject_id, job.attempts, error)
        delay = self.retry_base_seconds * 2 ** (job.attempts - 1)
        with self.context.database.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(
                    state=JobState.FAILED if final else JobState.QUEUED,
                    last_error=error,
                    run_after=utcnow() + timedelta(seconds=0 if final else delay),
                    finished_at=utcnow() if final else None,
                )
            )
        if final:
            if kind is not None:
                kind.give_up(self.context, job.subject_id, error)
        else:
            self.enqueue(job.id, delay=delay)

    def sweep(self) -> int:
        """Re-queue jobs stuck in `running` (a worker died) or queued but never picked up."""
        now = utcnow()
        with self.context.database.session() as session:
            stuck = session.execute(
                update(Job)
                .where(Job.state == JobState.RUNNING, Job.started_at < now - STUCK_RUNNING_AFTER)
                .values(state=JobState.QUEUED)
                .returning(Job.id)
            ).scalars().all()
            lost = session.scalars(
                select(Job.id).where(Job.state == JobState.QUEUED, Job.run_after < now - LOST_QUEUED_AFTER)
            ).all()
        for job_id in {*stuck, *lost}:
            self.enqueue(job_id)
        if stuck:
            log.warning("re-queued %d job(s) stuck in running: %s", len(stuck), stuck)
        return len(stuck) + len(lost)

    def start_embedded(self, workers: int = 2) -> None:
        """Consume in background threads of this process (the default for `ivr serve`)."""
        # Idle workers poll the SQLite queue; a short ceiling keeps pickup latency low.
        self._consumer = _EmbeddedConsumer(self.huey, workers=workers, worker_type="thread", periodic=True,
                                           initial_delay=0.05, max_delay=POLL_CEILING_SECONDS)
        self._consumer.start()

    def stop_embedded(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None

    def run_worker(self, workers: int = 2) -> None:
        """Consume in the foreground with signal handling (`ivr worker`)."""
        Consumer(self.huey, workers=workers, worker_type="thread", periodic=True,
                 initial_delay=0.05, max_delay=POLL_CEILING_SECONDS).run()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no job is queued or running (used by tests, the load script and shutdown)."""
        deadline = threading.Event()
        waited = 0.0
        while waited < timeout:
            with self.context.database.session() as session:
                busy = session.scalars(
                    select(Job.id).where(Job.state.in_([JobState.QUEUED, JobState.RUNNING])).limit(1)
                ).first()
            if busy is None:
                return True
            deadline.wait(0.05)
            waited += 0.05
        return False
