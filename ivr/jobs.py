"""Background jobs: each is a database row (queued → running → done | failed); Huey carries its id.

The queue is SQLite-backed and consumed inside `ivr serve` by default, or Redis-backed and consumed
by `ivr worker` processes when IVR_REDIS_URL is set. A running job holds a lease that its worker renews;
the sweep re-queues a job whose lease ran out (its worker died), and a starting process re-queues at once
the jobs of dead processes on its own host. Failed attempts are retried with a capped exponential backoff.

Each kind of job declares itself next to its handler, `@job("download_recording", give_up=…)`, and call sites
schedule through the handle (`download_recording.schedule(session, recording.id)`); periodic tasks declare
themselves with `@periodic`. This module imports nothing from the domain: `ivr.job_modules` lists the modules
that declare jobs, and every process that runs or retries jobs imports it.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import cast

from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey
from huey.consumer import Consumer
from huey.storage import SqliteStorage
from sqlalchemy import Table, and_, bindparam, event, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.db import Database, utcnow
from ivr.models import Job, JobState

log = logging.getLogger(__name__)

# Retries: 10 s after the first failure, doubling, never more than 30 min apart. With JOB_MAX_ATTEMPTS (60)
# that spreads the tries over about 26 hours, so a day-long outage of Twilio, the disk or the database
# still ends with the job done.
RETRY_BASE_SECONDS = 10.0
RETRY_CAP_SECONDS = 30 * 60.0
# A running job's lease: renewed every LEASE_RENEW_SECONDS while its handler runs, so only a dead (or
# frozen) worker lets it lapse. Workers on different hosts must keep their clocks in step (NTP).
LEASE_SECONDS = 30.0
LEASE_RENEW_SECONDS = 10.0
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
GiveUpHook = Callable[[JobContext, int, str], None]
RetryHook = Callable[[Session, int], None]
PeriodicHandler = Callable[[JobContext], None]


JOBS = cast(Table, Job.__table__)
# JobKind.schedule's statement (SQLite's and PostgreSQL's ON CONFLICT), built once.
_JOB_INSERT = {
    on_postgresql: (postgresql.insert if on_postgresql else sqlite.insert)(JOBS)
    .values(kind=bindparam("kind"), subject_id=bindparam("subject_id"), state=JobState.QUEUED)
    .on_conflict_do_nothing(index_elements=["kind", "subject_id"])
    .returning(JOBS.c.id)
    for on_postgresql in (False, True)
}


@dataclass(frozen=True)
class JobKind:
    """One kind of job, declared with @job: its name (the rows' `kind`), how to run it, what to do when it
    finally fails, and what to undo when a person retries it (`retried` runs in the retrying transaction; it
    only changes rows, it does not commit). Call sites schedule through it."""

    name: str
    run: JobHandler
    give_up: GiveUpHook
    retried: RetryHook | None = None

    def schedule(self, session: Session, subject_id: int) -> int | None:
        """Create the job row (once per kind and subject) and return its id; a new row is queued when the
        session commits. An existing row was queued by whoever made it (a lost queue message is the sweep's
        to find), so a second callback for the same recording costs no second write to the queue: None."""
        # One Core statement, no savepoint, no ORM object: a row that exists (or that a concurrent transaction
        # is inserting: the database waits for it) leaves the insert a no-op instead of an IntegrityError.
        on_postgresql = session.get_bind().dialect.name == "postgresql"
        created: int | None = (
            session.connection()
            .execute(_JOB_INSERT[on_postgresql], {"kind": self.name, "subject_id": subject_id})
            .scalar_one_or_none()
        )
        if created is not None:
            session.info.setdefault("jobs_to_enqueue", []).append(created)
        return created


@dataclass(frozen=True)
class PeriodicTask:
    """Work every consumer runs on a schedule (`minute` in crontab's syntax), outside the job rows."""

    name: str
    run: PeriodicHandler
    minute: str


_KINDS: dict[str, JobKind] = {}
_PERIODIC_TASKS: dict[str, PeriodicTask] = {}


def job(name: str, *, give_up: GiveUpHook, retried: RetryHook | None = None) -> Callable[[JobHandler], JobKind]:
    """Declare the decorated handler as the job kind `name`; the decorated name becomes its JobKind. Its
    module belongs in ivr/job_modules.py (tests/test_jobs.py checks), so every worker knows the kind."""

    def declare(run: JobHandler) -> JobKind:
        return register_kind(JobKind(name, run, give_up, retried))

    return declare


def periodic(name: str, *, minute: str) -> Callable[[PeriodicHandler], PeriodicHandler]:
    """Declare the decorated function a periodic task that every consumer runs at `minute` (crontab's
    syntax, e.g. "*/10"); the function itself is returned unchanged. Its module belongs in ivr/job_modules.py."""

    def declare(run: PeriodicHandler) -> PeriodicHandler:
        if name in _PERIODIC_TASKS:
            raise ValueError(f"periodic task {name!r} is already declared")
        _PERIODIC_TASKS[name] = PeriodicTask(name, run, minute)
        return run

    return declare


def register_kind(kind: JobKind) -> JobKind:
    """Add a kind to the registry (what @job does); each name is declared once."""
    if kind.name in _KINDS:
        raise ValueError(f"job kind {kind.name!r} is already declared (by {_KINDS[kind.name].run.__module__})")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> JobKind:
    """Take a kind out of the registry and return it (tests' throwaway kinds); KeyError when it is not there."""
    return _KINDS.pop(name)


def job_kind(name: str) -> JobKind | None:
    """The declared kind of this name, or None."""
    return _KINDS.get(name)


def registered_kinds() -> dict[str, JobKind]:
    """Every declared job kind by name."""
    return dict(_KINDS)


def periodic_tasks() -> dict[str, PeriodicTask]:
    """Every declared periodic task by name (the queue's own sweep is not among them)."""
    return dict(_PERIODIC_TASKS)


def retry_delay(attempt: int, base: float = RETRY_BASE_SECONDS, cap: float = RETRY_CAP_SECONDS) -> float:
    """Seconds to wait after failed attempt number `attempt` (from 1): `base`, doubling, at most `cap`."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    return min(cap, base * 2.0 ** min(attempt - 1, 64))


def retry_schedule(max_attempts: int, base: float = RETRY_BASE_SECONDS, cap: float = RETRY_CAP_SECONDS) -> list[float]:
    """The waits between the attempts of a job that fails every time (one fewer than its attempts)."""
    return [retry_delay(attempt, base, cap) for attempt in range(1, max_attempts)]


def worker_identity() -> str:
    """Who holds a lease: "<hostname>:<pid>" of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_is_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 only checks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class JobNotRetryable(Exception):
    """A person asked to retry a job that is running or already done; the message says which."""


def retry_job(session: Session, job: Job) -> None:
    """Give a failed (or waiting) job a fresh budget: queued, attempts 0, due now. Its last error stays
    visible until the next attempt replaces it. The kind's `retried` hook undoes the give-up marks (a
    recording shown as failed goes back to pending). Queued through Huey when the session commits on a
    sessionmaker a JobQueue listens to; otherwise the sweep picks it up."""
    if job.state == JobState.RUNNING:
        raise JobNotRetryable(
            f"job {job.id} is running (on {job.owner or 'an unknown worker'}); it cannot be retried now"
        )
    if job.state == JobState.DONE:
        raise JobNotRetryable(f"job {job.id} is already done; there is nothing to retry")
    job.state = JobState.QUEUED
    job.attempts = 0
    job.run_after = utcnow()
    job.finished_at = None
    job.owner = None
    job.lease_expires_at = None
    kind = job_kind(job.kind)
    if kind is not None and kind.retried is not None:
        kind.retried(session, job.subject_id)
    session.flush()
    session.info.setdefault("jobs_to_enqueue", []).append(job.id)


def make_huey(settings: Settings) -> Huey:
    """The Huey instance for these settings: Redis when configured, else a SQLite file."""
    if settings.redis_url:
        # BRPOP: a worker takes a new job the moment it is queued.
        return RedisHuey("ivr", url=settings.redis_url, blocking=True, read_timeout=1)
    assert settings.huey_path is not None
    settings.huey_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("ivr", filename=str(settings.huey_path), storage_class=_QueueFileStorage)


class _QueueFileStorage(SqliteStorage):
    """Huey's SQLite queue without an fsync for every message (WAL with synchronous=NORMAL, where SQLite's
    default is FULL). The queue only carries job ids: the jobs are rows of the main database, written with
    full durability, and the sweep re-queues a queued job whose message went missing (LOST_QUEUED_AFTER). So
    a power cut can cost a message a few minutes' delay, never the file nor a job; and `recorded` no longer
    waits for a second fsync (about 0.2 ms of CPU and 3 ms on this disk) before it answers."""

    def _create_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = super()._create_connection()
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection


class _EmbeddedConsumer(Consumer):
    """A consumer run inside another program, which keeps its own signal handling."""

    def _set_signal_handlers(self) -> None:
        pass


class LeaseRenewal:
    """While a handler runs, extends its job's lease every `interval` seconds, but only while this process
    still holds the job (after a long stall the sweep may have handed it to another worker)."""

    def __init__(self, database: Database, job_id: int, owner: str, lease: float, interval: float) -> None:
        self.database = database
        self.job_id = job_id
        self.owner = owner
        self.lease = lease
        self.interval = interval
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_until_stopped, name=f"job-{job_id}-lease", daemon=True)

    def __enter__(self) -> LeaseRenewal:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def renew(self) -> bool:
        """Extend the lease; False when this owner no longer holds the job."""
        with self.database.session() as session:
            renewed = session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.owner == self.owner, Job.state == JobState.RUNNING)
                .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease))
                .returning(Job.id)
            ).first()
        return renewed is not None

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.renew():
                    self.lost = True
                    log.warning(
                        "job %s: lease lost (re-queued by the sweep); %s stops renewing it", self.job_id, self.owner
                    )
                    return
            except SQLAlchemyError as exc:  # the next tick tries again; the lease outlasts a few misses
                log.warning("job %s: could not renew the lease: %s", self.job_id, exc)


class JobQueue:
    """Runs job rows through Huey. One per process; bound to one database.

    `retry_base_seconds` and `retry_cap_seconds` shape the backoff (retry_delay); `lease_seconds` is how long
    a claim lasts without renewal and `lease_renew_seconds` how often a running job renews it. Tests shorten
    them all."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
        retry_cap_seconds: float = RETRY_CAP_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        lease_renew_seconds: float = LEASE_RENEW_SECONDS,
    ) -> None:
        if not 0 < lease_renew_seconds < lease_seconds:
            raise ValueError(
                f"the lease ({lease_seconds} s) must outlast its renewal interval ({lease_renew_seconds} s)"
            )
        self.context = JobContext(settings, database)
        self.retry_base_seconds = retry_base_seconds
        self.retry_cap_seconds = retry_cap_seconds
        self.lease_seconds = lease_seconds
        self.lease_renew_seconds = lease_renew_seconds
        self.created_at = utcnow()
        self._in_hand = 0  # jobs this process is handling, give-up hooks included
        self._in_hand_lock = threading.Lock()
        self.huey = make_huey(settings)
        self._run_task = self.huey.task(name="run_job")(self.run_job)
        self.huey.periodic_task(crontab(minute="*"), name="sweep_jobs")(self.sweep)
        for task in _PERIODIC_TASKS.values():  # e.g. Twilio reconciliation, the last safety net for lost webhooks
            self._add_periodic_task(task)
        self._consumer: Consumer | None = None
        event.listen(database.sessionmaker, "after_commit", self._enqueue_committed)
        event.listen(database.sessionmaker, "after_rollback", self._forget_rolled_back)

    def _add_periodic_task(self, task: PeriodicTask) -> None:
        context = self.context
        self.huey.periodic_task(crontab(minute=task.minute), name=task.name)(lambda: task.run(context))

    @property
    def backend(self) -> str:
        return "redis" if self.context.settings.redis_url else "sqlite"

    def _enqueue_committed(self, session: Session) -> None:
        for job_id in session.info.pop("jobs_to_enqueue", []):
            self.enqueue(job_id)

    def _forget_rolled_back(self, session: Session) -> None:
        session.info.pop("jobs_to_enqueue", None)

    def enqueue(self, job_id: int, delay: float = 0) -> bool:
        """Put a job id on the queue; a failure here is logged and left to the sweep (returns False)."""
        try:
            if delay:
                self._run_task.schedule((job_id,), delay=delay)
            else:
                self._run_task(job_id)
        except Exception:
            log.exception("could not enqueue job %s; the sweep will pick it up", job_id)
            return False
        return True

    def retry_delay(self, attempt: int) -> float:
        """This queue's wait after failed attempt `attempt`."""
        return retry_delay(attempt, self.retry_base_seconds, self.retry_cap_seconds)

    def run_job(self, job_id: int) -> None:
        """Claim the job row under a lease, run its handler while renewing the lease, record the outcome
        (retry with backoff or give up). A job that already used all its attempts is given up instead."""
        with self._in_hand_lock:
            self._in_hand += 1
        try:
            self._run_job(job_id)
        finally:
            with self._in_hand_lock:
                self._in_hand -= 1

    def _run_job(self, job_id: int) -> None:
        database = self.context.database
        owner = worker_identity()
        now = utcnow()
        with database.session() as session:
            claimed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == JobState.QUEUED, Job.attempts < Job.max_attempts)
                .values(
                    state=JobState.RUNNING,
                    attempts=Job.attempts + 1,
                    started_at=now,
                    owner=owner,
                    lease_expires_at=now + timedelta(seconds=self.lease_seconds),
                )
                .returning(Job.id)
            ).first()
            job = session.get(Job, job_id)
        if job is None:
            return  # gone
        if not claimed:
            if job.state == JobState.QUEUED:
                self._give_up_exhausted(job)
            return  # otherwise already taken by another worker, or done
        kind = job_kind(job.kind)
        try:
            if kind is None:
                raise PermanentJobError(f"unknown job kind {job.kind!r}")
            with LeaseRenewal(database, job_id, owner, self.lease_seconds, self.lease_renew_seconds):
                kind.run(self.context, job.subject_id)
        except Exception as exc:
            self._record_failure(job, kind, exc, owner)
        else:
            with database.session() as session:
                finished = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.owner == owner, Job.state == JobState.RUNNING)
                    .values(state=JobState.DONE, finished_at=utcnow(), lease_expires_at=None)
                    .returning(Job.id)
                ).first()
            if not finished:
                log.warning(
                    "job %s finished on %s after its lease had passed on; its next run has nothing to do", job_id, owner
                )

    def _give_up_exhausted(self, job: Job) -> None:
        """A queued job with no attempts left: its last attempt never reported back (the worker died)."""
        error = f"gave up after {job.attempts} attempts (the worker stopped during the last one)"
        with self.context.database.session() as session:
            failed = session.execute(
                update(Job)
                .where(Job.id == job.id, Job.state == JobState.QUEUED, Job.attempts >= Job.max_attempts)
                .values(
                    state=JobState.FAILED, last_error=error, finished_at=utcnow(), owner=None, lease_expires_at=None
                )
                .returning(Job.id)
            ).first()
        if not failed:
            return  # retried or claimed meanwhile
        log.error("job %s (%s #%s) %s", job.id, job.kind, job.subject_id, error)
        kind = job_kind(job.kind)
        if kind is not None:
            kind.give_up(self.context, job.subject_id, error)

    def _record_failure(self, job: Job, kind: JobKind | None, exc: Exception, owner: str) -> None:
        error = "".join(traceback.format_exception_only(exc)).strip()
        final = isinstance(exc, PermanentJobError) or job.attempts >= job.max_attempts
        log.warning("job %s (%s #%s) attempt %s failed: %s", job.id, job.kind, job.subject_id, job.attempts, error)
        delay = 0.0 if final else self.retry_delay(job.attempts)
        with self.context.database.session() as session:
            recorded = session.execute(
                update(Job)
                .where(Job.id == job.id, Job.owner == owner, Job.state == JobState.RUNNING)
                .values(
                    state=JobState.FAILED if final else JobState.QUEUED,
                    last_error=error,
                    run_after=utcnow() + timedelta(seconds=delay),
                    finished_at=utcnow() if final else None,
                    owner=owner if final else None,
                    lease_expires_at=None,
                )
                .returning(Job.id)
            ).first()
        if not recorded:
            log.warning(
                "job %s failed on %s after its lease had passed on; the outcome is left to its next run", job.id, owner
            )
        elif final:
            if kind is not None:
                kind.give_up(self.context, job.subject_id, error)
        else:
            self.enqueue(job.id, delay=delay)

    def sweep(self) -> int:
        """Re-queue running jobs whose lease ran out (their worker died) and queued jobs never picked up."""
        now = utcnow()
        claimed_before = now - timedelta(seconds=self.lease_seconds)
        with self.context.database.session() as session:
            expired = (
                session.execute(
                    update(Job)
                    .where(
                        Job.state == JobState.RUNNING,
                        or_(
                            Job.lease_expires_at < now,
                            # Claimed before leases existed: give it one lease's time from its start.
                            and_(
                                Job.lease_expires_at.is_(None),
                                or_(Job.started_at.is_(None), Job.started_at < claimed_before),
                            ),
                        ),
                    )
                    .values(state=JobState.QUEUED, owner=None, lease_expires_at=None, run_after=now)
                    .returning(Job.id)
                )
                .scalars()
                .all()
            )
            lost = session.scalars(
                select(Job.id).where(Job.state == JobState.QUEUED, Job.run_after < now - LOST_QUEUED_AFTER)
            ).all()
        for job_id in {*expired, *lost}:
            self.enqueue(job_id)
        if expired:
            log.warning("re-queued %d running job(s) whose lease ran out: %s", len(expired), list(expired))
        return len(expired) + len(lost)

    def requeue_jobs_of_dead_workers(self) -> list[int]:
        """At start-up: re-queue at once the running jobs whose owner is a dead process on this host (no need
        to wait for the lease). A job held under this process's own "host:pid" since before this queue was
        made belongs to an earlier process with the same pid (a container's worker is always pid 1).
        If the database cannot be reached, says so and leaves it to the sweep."""
        host, me = socket.gethostname(), os.getpid()
        try:
            with self.context.database.session() as session:
                running = session.execute(
                    select(Job.id, Job.owner, Job.started_at).where(
                        Job.state == JobState.RUNNING, Job.owner.is_not(None)
                    )
                ).all()
                dead = [
                    job_id
                    for job_id, owner, started_at in running
                    if owner and self._owner_is_dead(owner, started_at, host, me)
                ]
                if dead:
                    session.execute(
                        update(Job)
                        .where(Job.id.in_(dead), Job.state == JobState.RUNNING)
                        .values(state=JobState.QUEUED, owner=None, lease_expires_at=None, run_after=utcnow())
                    )
        except SQLAlchemyError as exc:
            log.warning(
                "could not look for jobs of dead workers (the sweep will re-queue them when their leases run out): %s",
                exc,
            )
            return []
        for job_id in dead:
            self.enqueue(job_id)
        if dead:
            log.warning("re-queued %d job(s) left running by dead processes on %s: %s", len(dead), host, dead)
        return dead

    def _owner_is_dead(self, owner: str, started_at: datetime | None, host: str, me: int) -> bool:
        owner_host, _, pid_text = owner.rpartition(":")
        if owner_host != host or not pid_text.isdigit():
            return False
        pid = int(pid_text)
        if pid == me:
            return started_at is None or started_at < self.created_at
        return not process_is_alive(pid)

    def start_embedded(self, workers: int = 2) -> None:
        """Consume in background threads of this process (the default for `ivr serve`)."""
        # Idle workers poll the SQLite queue; a short ceiling keeps pickup latency low.
        self._consumer = _EmbeddedConsumer(
            self.huey,
            workers=workers,
            worker_type="thread",
            periodic=True,
            initial_delay=0.05,
            max_delay=POLL_CEILING_SECONDS,
        )
        self._consumer.start()

    def stop_embedded(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None

    def run_worker(self, workers: int = 2) -> None:
        """Consume in the foreground with signal handling (`ivr worker`)."""
        Consumer(
            self.huey,
            workers=workers,
            worker_type="thread",
            periodic=True,
            initial_delay=0.05,
            max_delay=POLL_CEILING_SECONDS,
        ).run()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no job is queued or running, and none is still being handled here (a failed job's
        give-up hook runs after its row says failed). Used by tests, the load script and shutdown."""
        deadline = threading.Event()
        waited = 0.0
        while waited < timeout:
            with self.context.database.session() as session:
                busy = session.scalars(
                    select(Job.id).where(Job.state.in_([JobState.QUEUED, JobState.RUNNING])).limit(1)
                ).first()
            with self._in_hand_lock:
                in_hand = self._in_hand
            if busy is None and not in_hand:
                return True
            deadline.wait(0.05)
            waited += 0.05
        return False
