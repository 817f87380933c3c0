"""The webhook spool: requests that could not reach the database, kept on local disk until it is back.

A webhook that fails (database unreachable, locked past its timeout, or a bug) still answers the caller
with useful TwiML; the request itself — path, signed form, the headers that matter, arrival time — is
written here first, one fsynced file per request. Replaying runs each request through the same step as
live, in arrival order, under the request's own idempotency token (or one derived from the spool entry),
so a call, its ticket and its recording download exist as if nothing had happened, and replaying twice
changes nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from flask import Flask
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from twilio.request_validator import RequestValidator

from ivr.db import frozen_clock, utcnow
from ivr.durable import fsync_directory

log = logging.getLogger(__name__)

FAILED_FOLDER = "failed"
REPLAY_INTERVAL_SECONDS = 5.0
# What says "the database is still not there" (unreachable, locked, timed out): stop and try again later.
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)
INTEGRITY_RETRIES = 3  # a race with a live webhook for the same call: run again, as live requests do


@dataclass(frozen=True)
class SpooledRequest:
    """One webhook request as Twilio sent it."""

    id: str  # sortable: arrival in nanoseconds, then a random tail
    received_at: str  # ISO 8601, UTC
    path: str  # e.g. /twilio/recording-status
    query: str
    form: dict[str, str]
    signature: str
    idempotency_token: str | None
    reason: str

    @property
    def arrival(self) -> datetime:
        return datetime.fromisoformat(self.received_at)

    @property
    def endpoint(self) -> str:
        return self.path.removeprefix("/twilio/")

    @property
    def replay_token(self) -> str:
        """The idempotency key of the replay: Twilio's own token, else one this entry owns."""
        return self.idempotency_token or f"spool:{self.id}"


@dataclass(frozen=True)
class SpoolStatus:
    pending: int
    oldest: datetime | None
    failed: int

    @property
    def empty(self) -> bool:
        return self.pending == 0 and self.failed == 0


@dataclass
class ReplayResult:
    replayed: int = 0
    parked: int = 0
    remaining: int = 0
    stopped_by: str | None = None  # why replay stopped early (the database is still down)


class Spool:
    """A folder of spooled requests (`<id>.json`), and `failed/` for those a replay could not apply."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.failed_directory = directory / FAILED_FOLDER

    def write(self, request: SpooledRequest) -> Path:
        """Write the request durably (file and folder fsynced) before the caller gets an answer."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{request.id}.json"
        temp = self.directory / f".{request.id}.tmp"
        with open(temp, "w", encoding="utf-8") as fh:
            json.dump(asdict(request), fh, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, target)
        fsync_directory(self.directory)
        return target

    def entries(self) -> list[SpooledRequest]:
        """Pending requests in arrival order."""
        return [self._read(path) for path in self._pending_paths()]

    def failed_entries(self) -> list[tuple[SpooledRequest, str]]:
        """Requests a replay could not apply, with the reason."""
        found = []
        for path in sorted(self.failed_directory.glob("*.json")) if self.failed_directory.exists() else []:
            reason_file = path.with_suffix(".error")
            reason = reason_file.read_text(encoding="utf-8") if reason_file.exists() else ""
            found.append((self._read(path), reason))
        return found

    def status(self) -> SpoolStatus:
        pending = self._pending_paths()
        oldest = self._read(pending[0]).arrival if pending else None
        failed = len(list(self.failed_directory.glob("*.json"))) if self.failed_directory.exists() else 0
        return SpoolStatus(len(pending), oldest, failed)

    def remove(self, request: SpooledRequest) -> None:
        (self.directory / f"{request.id}.json").unlink(missing_ok=True)

    def park(self, request: SpooledRequest, reason: str) -> None:
        """Move a request that cannot be applied aside, with why, for a person to look at."""
        self.failed_directory.mkdir(parents=True, exist_ok=True)
        (self.failed_directory / f"{request.id}.error").write_text(reason, encoding="utf-8")
        os.replace(self.directory / f"{request.id}.json", self.failed_directory / f"{request.id}.json")
        fsync_directory(self.failed_directory)

    def retry_failed(self) -> int:
        """Put every parked request back in the queue (after a fix); returns how many."""
        moved = 0
        for request, _reason in self.failed_entries():
            os.replace(self.failed_directory / f"{request.id}.json", self.directory / f"{request.id}.json")
            (self.failed_directory / f"{request.id}.error").unlink(missing_ok=True)
            moved += 1
        return moved

    @contextlib.contextmanager
    def replay_lock(self) -> Iterator[bool]:
        """Only one replay at a time across the processes sharing this folder; yields False if busy."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".replay.lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _pending_paths(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob("*.json"))

    @staticmethod
    def _read(path: Path) -> SpooledRequest:
        return SpooledRequest(**json.loads(path.read_text(encoding="utf-8")))


def new_entry(
    path: str, query: str, form: dict[str, str], signature: str, token: str | None, reason: str
) -> SpooledRequest:
    return SpooledRequest(
        id=f"{time.time_ns():020d}-{secrets.token_hex(4)}",
        received_at=utcnow().isoformat(),
        path=path,
        query=query,
        form=form,
        signature=signature,
        idempotency_token=token,
        reason=reason[:500],
    )


def app_spool(app: Flask) -> Spool:
    return Spool(app.config["IVR"].spool_dir)


def replay_spool(app: Flask) -> ReplayResult:
    """Apply every pending request in arrival order; stop at the first sign the database is still down.
    A request that fails for any other reason (or whose signature no longer matches) is parked."""
    from ivr.telephony.webhook import WEBHOOKS, run_step

    spool = app_spool(app)
    settings = app.config["IVR"]
    validator = RequestValidator(settings.twilio_auth_token)
    result = ReplayResult()
    with spool.replay_lock() as mine:
        if not mine:
            result.remaining = spool.status().pending
            result.stopped_by = "another process is replaying the spool"
            return result
        entries = spool.entries()
        for index, entry in enumerate(entries):
            url = settings.public_url + entry.path + (f"?{entry.query}" if entry.query else "")
            registered = WEBHOOKS.get(entry.endpoint)
            if registered is None:
                spool.park(entry, f"no webhook {entry.path}")
                result.parked += 1
                continue
            if not validator.validate(url, entry.form, entry.signature):
                spool.park(entry, "X-Twilio-Signature does not match (auth token changed, or the file was edited)")
                result.parked += 1
                continue
            step, sid_param = registered
            call_sid = entry.form.get(sid_param, "")
            try:
                with (
                    app.test_request_context(
                        entry.path,
                        method="POST",
                        data=entry.form,
                        query_string=entry.query,
                        base_url=settings.public_url,
                    ),
                    frozen_clock(entry.arrival),
                ):
                    for attempt in range(1, INTEGRITY_RETRIES + 1):
                        try:
                            run_step(step, entry.endpoint, call_sid, entry.form, entry.replay_token)
                            break
                        except IntegrityError:
                            if attempt == INTEGRITY_RETRIES:
                                raise
            except DATABASE_DOWN as exc:
                result.stopped_by = f"database still unavailable: {type(exc).__name__}"
                result.remaining = len(entries) - index
                return result
            except Exception as exc:
                log.exception("spooled %s %s could not be applied; parked", entry.path, entry.id)
                spool.park(entry, f"{type(exc).__name__}: {exc}")
                result.parked += 1
                continue
            spool.remove(entry)
            result.replayed += 1
    if result.replayed or result.parked:
        log.info("spool replay: %d applied, %d parked", result.replayed, result.parked)
    return result


class SpoolReplayer:
    """A background thread in `ivr serve` / `ivr worker`: replays the spool whenever it holds requests."""

    def __init__(self, app: Flask, interval: float = REPLAY_INTERVAL_SECONDS) -> None:
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-replayer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        spool = app_spool(self.app)
        while not self._stop.is_set():
            try:
                if spool.status().pending:
                    replay_spool(self.app)
            except Exception:
                log.exception("spool replay failed; trying again in %.0f s", self.interval)
            self._stop.wait(self.interval)
