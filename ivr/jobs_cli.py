"""`ivr jobs list | retry`: the background jobs (downloads, transcriptions, SMS, QA scoring) and their errors."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

if TYPE_CHECKING:
    from ivr.cli_state import CliState
    from ivr.jobs import JobQueue
    from ivr.models import Job

# JobState's values, spelled out so `ivr --help` need not load the models.
STATES = ("queued", "running", "done", "failed")
# What a job's subject_id points at, by kind (others are shown as a bare id).
SUBJECTS = {
    "download_recording": "recording",
    "transcribe_recording": "recording",
    "evaluate_call": "call",
    "notify_sms": "notice",
    "place_follow_up_call": "follow-up",
    "place_call_back": "call-back",
}
ERROR_WIDTH = 70
_EXCEPTION_MODULE = re.compile(r"^(?:[a-z_][\w]*\.)+(?=[A-Z]\w*: )")


@click.group()
def jobs() -> None:
    """Background jobs: what is queued, running or failed, and retrying the failed ones."""


@jobs.command("list")
@click.option("--state", "job_state", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option("--kind", help="Only jobs of this kind, e.g. download_recording.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Newest jobs shown.")
@click.pass_obj
def list_jobs(state: CliState, job_state: str | None, kind: str | None, limit: int) -> None:
    """Show jobs, newest first: attempts, when the next try is (or when it finished) and the last error."""
    from sqlalchemy import func, select

    from ivr.models import Job, JobState

    zone = ZoneInfo(state.settings.timezone)
    query = select(Job)
    if job_state:
        query = query.where(Job.state == JobState(job_state))
    if kind:
        query = query.where(Job.kind == kind)
    with state.database.session(read_only=True) as session:
        counts = {row[0]: row[1] for row in session.execute(select(Job.state, func.count()).group_by(Job.state))}
        matching = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        shown = list(session.scalars(query.order_by(Job.id.desc()).limit(limit)))
    click.echo("jobs: " + ", ".join(f"{counts.get(s, 0)} {s.value}" for s in JobState))
    if not shown:
        click.echo("no jobs match")
        return
    rows: list[tuple[str, ...]] = [("ID", "KIND", "SUBJECT", "STATE", "TRIES", "NEXT RUN / FINISHED", "LAST ERROR")]
    rows += [_row(job, zone) for job in shown]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    if matching > len(shown):
        click.echo(f"showing the newest {len(shown)} of {matching}; use --limit for more")


def _subject(job: Job) -> str:
    noun = SUBJECTS.get(job.kind)
    return f"{noun} {job.subject_id}" if noun else f"#{job.subject_id}"


def _row(job: Job, zone: ZoneInfo) -> tuple[str, ...]:
    return (
        str(job.id),
        job.kind,
        _subject(job),
        job.state.value,
        f"{job.attempts}/{job.max_attempts}",
        _when(job, zone),
        _shorten(job.last_error),
    )


def _when(job: Job, zone: ZoneInfo) -> str:
    from ivr.models import JobState

    if job.state == JobState.QUEUED:
        return "next run " + _local(job.run_after, zone)
    if job.state == JobState.RUNNING:
        lease = f", lease to {_local(job.lease_expires_at, zone)}" if job.lease_expires_at else ""
        return f"running on {job.owner or '?'}{lease}"
    return "finished " + _local(job.finished_at, zone)


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _shorten(error: str | None) -> str:
    """The error's last line (the exception, without its module, and its message), cut to ERROR_WIDTH characters."""
    if not error:
        return ""
    line = _EXCEPTION_MODULE.sub("", error.strip().splitlines()[-1])
    return line if len(line) <= ERROR_WIDTH else line[: ERROR_WIDTH - 1] + "…"


@jobs.command("retry")
@click.argument("job_id", type=int, required=False)
@click.option("--all-failed", is_flag=True, help="Retry every failed job.")
@click.pass_obj
def retry(state: CliState, job_id: int | None, all_failed: bool) -> None:
    """Run job JOB_ID (or every failed job) again with a fresh set of attempts, starting now.

    The last error stays shown until the next attempt replaces it. A recording whose download had failed is
    pending again (no longer shown as failed on its ticket). The job is queued at once when the queue can be
    reached; otherwise the periodic sweep picks it up within about three minutes.
    """
    from sqlalchemy import select

    import ivr.job_modules  # noqa: F401  (the kinds' retry hooks, e.g. a failed recording pending again)
    from ivr.jobs import JobNotRetryable, retry_job
    from ivr.models import Job, JobState

    if (job_id is None) == (not all_failed):
        raise click.UsageError("give a job ID or --all-failed (not both)")
    queue = _queue_or_none(state)
    with state.database.session() as session:
        if all_failed:
            chosen = list(session.scalars(select(Job).where(Job.state == JobState.FAILED).order_by(Job.id)))
        else:
            job = session.get(Job, job_id)
            if job is None:
                raise click.ClickException(f"no job {job_id} (see `ivr jobs list`)")
            chosen = [job]
        for job in chosen:
            try:
                retry_job(session, job)
            except JobNotRetryable as exc:
                raise click.ClickException(str(exc)) from exc
        # Enqueued below, after the commit, so this command can say whether the queue took them.
        retried = session.info.pop("jobs_to_enqueue", [])
        described = {job.id: f"job {job.id} ({job.kind}, {_subject(job)})" for job in chosen}
    if not retried:
        click.echo("no failed jobs to retry")
        return
    queued = queue is not None and all([queue.enqueue(job) for job in retried])
    for job in retried:
        click.echo(f"{described[job]} queued again with a fresh set of attempts")
    if not queued:
        click.echo(
            "the job queue could not be reached: the periodic sweep will pick them up within about three minutes",
            err=True,
        )


def _queue_or_none(state: CliState) -> JobQueue | None:
    """A JobQueue to hand retried jobs to, or None (then the sweep finds them)."""
    from ivr.jobs import JobQueue

    try:
        return JobQueue(state.settings, state.database)
    except Exception as exc:  # e.g. the instance folder is read-only for this user
        click.echo(f"job queue unavailable ({exc})", err=True)
        return None
