"""Reconciliation with Twilio, the last safety net: every recording Twilio holds is on a call here.

The line learns of a message from Twilio's webhooks. If all of them were lost (the server was down, the
fallback failed too, a callback never came), the message still exists at Twilio. `reconcile_recordings`
lists the account's recordings since its last run (the `twilio_recordings` checkpoint, with some hours of
overlap because Twilio filters by day; the first run looks back two days), and for each one the database
does not know it fetches the call (who called, when), opens a recovered ticket — or, for a transfer's
recording, just keeps it on the call — registers the recording and schedules its download.

Everything Twilio is asked happens before anything is written: a 401 or an unreachable Twilio leaves the
database as it was. Each recording is then imported in its own transaction, idempotent on RecordingSid,
so a run twice imports nothing twice and a webhook that arrives later simply finds its row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ivr.db import utcnow
from ivr.jobs import JobContext, periodic
from ivr.models import Call, Category, Checkpoint, Recording, RecordingSource
from ivr.recordings.download import download_recording
from ivr.tickets.events import record_event
from ivr.tickets.operations import ABANDONED_NOTE, ensure_ticket, get_or_create_call, register_recording
from ivr.twilio_rest import TwilioApi, TwilioApiError
from ivr.twilio_sids import CALL_SID, RECORDING_SID

log = logging.getLogger(__name__)

CHECKPOINT = "twilio_recordings"
FIRST_RUN_LOOKBACK = timedelta(days=2)
# Twilio's DateCreated>= filter has day granularity; the overlap also covers recordings left for later.
OVERLAP = timedelta(hours=3)
# A recording younger than this may still have its webhooks on the way: the next run looks again.
SETTLE = timedelta(minutes=10)
PAGE_SIZE = 1000  # Twilio's maximum
DIAL_SOURCE = "DialVerb"
RECOVERED_NOTE = "由Twilio对账找回:线路未收到这条留言的回调,请回电确认"
_SID_CHUNK = 500  # RecordingSids per IN (...) query


class ReconcileError(Exception):
    """Reconciliation could not ask Twilio; nothing was imported. The message says what to check."""


@dataclass(frozen=True)
class TwilioRecording:
    """A recording as Twilio's Recordings list describes it."""

    sid: str
    call_sid: str
    status: str
    source: str
    uri: str
    duration: float | None
    channels: int | None
    created: datetime | None

    @property
    def is_transfer(self) -> bool:
        """Made by <Dial record=…>: it belongs to the call, not to a message ticket."""
        return self.source == DIAL_SOURCE


@dataclass(frozen=True)
class TwilioCall:
    """The fields of Twilio's Call resource a recovered call needs."""

    sid: str
    from_number: str | None
    to_number: str | None
    direction: str | None
    status: str | None
    started: datetime | None
    ended: datetime | None
    duration: int | None


@dataclass(frozen=True)
class ImportedRecording:
    """One recording reconciliation put on a call (and, for a message, a ticket)."""

    recording_sid: str
    call_sid: str
    source: str  # "message" | "dial"
    from_number: str | None
    ticket_number: str | None


@dataclass
class ReconcileReport:
    """What one run saw at Twilio and what it imported."""

    since: date
    listed: int = 0
    known: int = 0
    not_completed: int = 0
    too_recent: int = 0
    imported: list[ImportedRecording] = field(default_factory=list)


def reconcile_recordings(
    context: JobContext, *, since: date | None = None, settle: timedelta = SETTLE, now: datetime | None = None
) -> ReconcileReport:
    """Import every completed recording Twilio holds (created on or after `since`, default: since the last
    run) that the database does not know. Raises ReconcileError, with nothing written, when Twilio cannot be
    asked."""
    now = now or utcnow()
    database = context.database
    with database.session(read_only=True) as session:
        checkpoint = session.get(Checkpoint, CHECKPOINT)
        automatic_since = listing_day(checkpoint.at if checkpoint else None, now)
    report = ReconcileReport(since=since or automatic_since)
    api = TwilioApi.from_settings(context.settings)
    try:
        listed = list_recordings(api, report.since)
        report.listed = len(listed)
        completed = [r for r in listed if r.status == "completed"]
        report.not_completed = len(listed) - len(completed)
        settled = [r for r in completed if r.created is None or r.created <= now - settle]
        report.too_recent = len(completed) - len(settled)
        known = _known_sids(context, [r.sid for r in settled])
        report.known = len(known)
        missing = sorted((r for r in settled if r.sid not in known), key=lambda r: (r.created or now, r.sid))
        calls = {call_sid: fetch_call(api, call_sid) for call_sid in dict.fromkeys(r.call_sid for r in missing)}
    except TwilioApiError as exc:
        raise ReconcileError(f"reconciliation with Twilio failed, nothing was imported: {exc}") from exc

    for recording in missing:
        imported = _import(context, recording, calls.get(recording.call_sid))
        if imported is not None:
            report.imported.append(imported)
    if report.since <= automatic_since:  # a later --since leaves a gap the next automatic run must cover
        _advance_checkpoint(context, now)
    return report


@periodic("reconcile_recordings", minute="*/10")
def reconcile_periodically(context: JobContext) -> None:
    """The periodic task: reconcile, and log (never raise) what went wrong or what was found."""
    try:
        report = reconcile_recordings(context)
    except ReconcileError as exc:
        log.warning("%s", exc)
        return
    except Exception:
        log.exception("reconciliation with Twilio failed")
        return
    if report.imported:
        log.warning(
            "reconciliation found %d recording(s) the line never heard of: %s",
            len(report.imported),
            ", ".join(f"{i.recording_sid} (ticket {i.ticket_number or '-'})" for i in report.imported),
        )


def listing_day(last_run: datetime | None, now: datetime) -> date:
    """The GMT day to list from: the last run minus the overlap, or the first-run look-back."""
    start = last_run - OVERLAP if last_run is not None else now - FIRST_RUN_LOOKBACK
    return start.astimezone(UTC).date()


def list_recordings(api: TwilioApi, since: date) -> list[TwilioRecording]:
    """Every recording of the account created on or after `since` (GMT), all pages."""
    # On the wire `DateCreated>=2026-11-25` is the parameter "DateCreated>" with the value "2026-11-25".
    params = {"DateCreated>": since.isoformat(), "PageSize": str(PAGE_SIZE)}
    found: dict[str, TwilioRecording] = {}
    for page in api.pages(api.account_path("Recordings.json"), params, "recordings"):
        for item in page:
            recording = _recording(item, api)
            if recording is not None:
                found.setdefault(recording.sid, recording)
    return list(found.values())


def fetch_call(api: TwilioApi, call_sid: str) -> TwilioCall | None:
    """The Call resource, or None when Twilio no longer has it (the recording is imported anyway)."""
    try:
        body = api.get(api.account_path(f"Calls/{call_sid}.json"))
    except TwilioApiError as exc:
        if exc.status == 404:
            return None
        raise
    return TwilioCall(
        sid=call_sid,
        from_number=_text(body.get("from")),
        to_number=_text(body.get("to")),
        direction=_text(body.get("direction")),
        status=_text(body.get("status")),
        started=_rfc2822(body.get("start_time")) or _rfc2822(body.get("date_created")),
        ended=_rfc2822(body.get("end_time")),
        duration=int(body["duration"]) if str(body.get("duration") or "").isdigit() else None,
    )


def _recording(item: dict[str, Any], api: TwilioApi) -> TwilioRecording | None:
    sid, call_sid = _text(item.get("sid")), _text(item.get("call_sid"))
    if not sid or not call_sid:
        return None  # e.g. a conference recording without a call: nothing to put on a ticket
    if not RECORDING_SID.fullmatch(sid) or not CALL_SID.fullmatch(call_sid):
        log.warning("reconciliation skipped a recording whose SIDs are not in Twilio's format")
        return None
    uri = _text(item.get("uri")) or api.account_path(f"Recordings/{sid}.json")
    try:
        duration = float(item["duration"]) if item.get("duration") is not None else None
    except (TypeError, ValueError):
        duration = None
    channels = item.get("channels")
    return TwilioRecording(
        sid=sid[:64],
        call_sid=call_sid[:64],
        status=_text(item.get("status")) or "",
        source=_text(item.get("source")) or "",
        uri=uri,
        duration=duration if duration is not None and duration >= 0 else None,
        channels=channels if isinstance(channels, int) and channels > 0 else None,
        created=_rfc2822(item.get("date_created")),
    )


def _known_sids(context: JobContext, sids: list[str]) -> set[str]:
    known: set[str] = set()
    with context.database.session(read_only=True) as session:
        for start in range(0, len(sids), _SID_CHUNK):
            chunk = sids[start : start + _SID_CHUNK]
            known.update(session.scalars(select(Recording.recording_sid).where(Recording.recording_sid.in_(chunk))))
    return known


def _import(context: JobContext, found: TwilioRecording, call_info: TwilioCall | None) -> ImportedRecording | None:
    """Put one recording on its call (a recovered ticket for a message) and schedule its download, in one
    transaction. None when it is already known (a webhook registered it meanwhile)."""
    settings = context.settings
    api = TwilioApi.from_settings(settings)
    # The media URL on the configured API host (the download job appends .wav, and checks the host).
    media_url = api.url(found.uri.removesuffix(".json"))
    try:
        with context.database.session() as session:
            if session.scalars(select(Recording.id).where(Recording.recording_sid == found.sid)).first():
                return None
            is_new_call = session.scalars(select(Call.id).where(Call.call_sid == found.call_sid)).first() is None
            call = get_or_create_call(
                session,
                found.call_sid,
                account_sid=settings.twilio_account_sid,
                from_number=call_info.from_number if call_info else None,
                to_number=call_info.to_number if call_info else None,
                direction=call_info.direction if call_info else None,
            )
            if is_new_call:
                _describe_new_call(call, found, call_info)
            ticket = None
            if not found.is_transfer:
                had_ticket = call.ticket is not None
                ticket = ensure_ticket(
                    session, call, settings.timezone, note=RECOVERED_NOTE, urgent=call.category == Category.EMERGENCY
                )
                if not had_ticket or ticket.note == ABANDONED_NOTE:
                    # Opened for this message, or a call-back ticket that turns out to have one.
                    ticket.note = RECOVERED_NOTE
                    ticket.recovered = True
                record_event(session, ticket, "recovered", None, recording_sid=found.sid, reason=RECOVERED_NOTE)
            recording = register_recording(
                session,
                call,
                found.sid,
                source=RecordingSource.DIAL if found.is_transfer else RecordingSource.MESSAGE,
                source_url=media_url,
                duration=found.duration,
                channels=found.channels,
                twilio_status="completed",
            )
            recording.ticket = ticket
            if found.created is not None:
                recording.created_at = found.created
            download_recording.schedule(session, recording.id)
            imported = ImportedRecording(
                found.sid, found.call_sid, recording.source, call.from_number, ticket.number if ticket else None
            )
    except IntegrityError:
        # A webhook of the same call or recording committed first; the next run finds it known.
        log.info("recording %s arrived through the webhooks while it was being imported", found.sid)
        return None
    return imported


def _describe_new_call(call: Call, found: TwilioRecording, call_info: TwilioCall | None) -> None:
    """A call first seen here: its time and outcome from Twilio (the download files it by this date)."""
    started = (call_info.started if call_info else None) or found.created
    if started is not None:
        call.started_at = started
    if call_info is not None:
        call.status = (call_info.status or call.status)[:32]
        call.ended_at = call_info.ended
        call.duration = call_info.duration


def _advance_checkpoint(context: JobContext, reached: datetime) -> None:
    try:
        with context.database.session() as session:
            checkpoint = session.get(Checkpoint, CHECKPOINT)
            if checkpoint is None:
                session.add(Checkpoint(name=CHECKPOINT, at=reached))
            elif checkpoint.at < reached:
                checkpoint.at = reached
    except IntegrityError:
        pass  # a concurrent run wrote the checkpoint first


def _text(value: object) -> str | None:
    """A non-empty string field of Twilio's JSON, else None."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _rfc2822(value: object) -> datetime | None:
    """Twilio's dates (`Fri, 27 Nov 2026 01:02:03 +0000`) as aware UTC datetimes."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
