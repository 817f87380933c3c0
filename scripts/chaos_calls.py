#!/usr/bin/env python3
"""Chaos: concurrent emulated calls against a real `ivr serve` while faults are injected at random, then a
count of what survived. Prints calls placed, messages left and stored byte-exact, duplicates and the slowest
webhook.

    .venv/bin/python -m scripts.chaos_calls --calls 200 --concurrency 8 --duration 120
    .venv/bin/python -m scripts.chaos_calls --postgres          # a throwaway PostgreSQL, stopped and restarted

Faults (all by default; choose with --faults): `lock` (another process holds the SQLite write lock for
3–25 s), `postgres` (the PostgreSQL server stopped for 2–10 s, then started), `kill` (`ivr serve` killed with
SIGKILL and started again 1–3 s later), `recordings` (the recording host answers 503 for 5–20 s).
Every message a caller left must end stored byte-exact on exactly one ticket; the exit status says so.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from ivr.db import Database
from ivr.devphone.audio import write_tone_wav
from ivr.devphone.callers import CallerScript, Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.faults import (
    ServeProcess,
    ThrowawayPostgres,
    postgres_bindir,
    sqlite_locked_by_another_process,
)
from ivr.devphone.recording_server import RecordingServer
from ivr.devphone.results import CallResult
from ivr.devphone.transport import HttpTransport
from ivr.migrate import upgrade_database
from ivr.models import Call, CallEvent, Recording, RecordingState, Ticket
from scripts.benchkit import IVR, percentile

ACCOUNT_SID = "AC" + "9" * 32
AUTH_TOKEN = "chaos-test-auth-token"
TWILIO_TIMEOUT_SECONDS = 15.0
SETTLE_SECONDS = 180


@dataclass
class FaultLog:
    counts: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, seconds: float) -> None:
        self.counts[kind] += 1
        self.seconds.setdefault(kind, []).append(seconds)

    def describe(self) -> str:
        return (
            ", ".join(
                f"{kind}×{n} ({min(self.seconds[kind]):.0f}–{max(self.seconds[kind]):.0f} s)"
                for kind, n in sorted(self.counts.items())
            )
            or "none happened"
        )


class Faults(threading.Thread):
    """Injects one fault at a time, at random, until told to stop; always leaves everything running."""

    def __init__(
        self,
        kinds: list[str],
        rng: random.Random,
        serve: ServeProcess,
        recordings: RecordingServer,
        sqlite_file: str | None,
        postgres: ThrowawayPostgres | None,
    ) -> None:
        super().__init__(name="faults", daemon=True)
        self.kinds, self.rng, self.serve, self.recordings = kinds, rng, serve, recordings
        self.sqlite_file, self.postgres = sqlite_file, postgres
        self.log = FaultLog()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.rng.uniform(1.0, 4.0)):
            kind = self.rng.choice(self.kinds)
            started = time.monotonic()
            getattr(self, f"_{kind}")()
            self.log.add(kind, time.monotonic() - started)

    def _hold(self, low: float, high: float) -> None:
        self.done.wait(self.rng.uniform(low, high))

    def _lock(self) -> None:
        assert self.sqlite_file is not None
        with sqlite_locked_by_another_process(self.sqlite_file):
            self._hold(3, 25)

    def _postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.stop("fast")
        try:
            self._hold(2, 10)
        finally:
            self.postgres.start()

    def _kill(self) -> None:
        self.serve.kill()
        time.sleep(self.rng.uniform(1, 3))
        self.serve.start()

    def _recordings(self) -> None:
        self.recordings.outage = True
        try:
            self._hold(5, 20)
        finally:
            self.recordings.outage = False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds over which the calls arrive")
    parser.add_argument("--postgres", action="store_true", help="run on a throwaway PostgreSQL server")
    parser.add_argument("--faults", help="comma-separated: lock, postgres, kill, recordings (default: all that apply)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (printed, to repeat a run)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, database, spool)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    rng = random.Random(seed)
    if args.postgres and postgres_bindir() is None:
        raise SystemExit("--postgres needs the PostgreSQL server binaries (Debian package postgresql)")
    kinds = args.faults.split(",") if args.faults else ["postgres" if args.postgres else "lock", "kill", "recordings"]

    workdir = Path(tempfile.mkdtemp(prefix="ivr-chaos-"))
    with ExitStack() as stack:
        postgres = None
        if args.postgres:
            postgres = ThrowawayPostgres()
            stack.callback(postgres.remove)
            postgres.start()
            database_url = postgres.url
        else:
            database_url = f"sqlite:///{workdir / 'ivr.sqlite3'}"
        upgrade_database(database_url)
        recordings = RecordingServer(ACCOUNT_SID, AUTH_TOKEN).start()
        stack.callback(recordings.stop)
        environ = {
            "IVR_ENV": "development",
            "IVR_INSTANCE_DIR": str(workdir / "instance"),
            "IVR_RECORDINGS_DIR": str(workdir / "recordings"),
            "IVR_DATABASE_URL": database_url,
            "IVR_DUTY_NUMBERS": "",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "IVR_SECRET_KEY": "chaos-" + "k" * 32,
            "IVR_TWILIO_API_URL": recordings.base_url,
            "IVR_MODELS_DIR": str(workdir / "models"),
        }
        serve = ServeProcess(environ, workdir / "serve.log", "--threads", "16").start()
        stack.callback(serve.stop)
        message = write_tone_wav(workdir / "message.wav", seconds=3.0)
        expected_sha = hashlib.sha256(message.read_bytes()).hexdigest()
        transport = HttpTransport(serve.url, serve.url, timeout=TWILIO_TIMEOUT_SECONDS)
        phone = TwilioEmulator(transport, serve.url, ACCOUNT_SID, AUTH_TOKEN, recordings)

        def one_call(i: int) -> CallResult:
            # Callers arrive spread over --duration (not back to back), so the faults meet calls throughout.
            time.sleep(max(0.0, started + i * args.duration / args.calls - time.monotonic()))
            room = f"{i % 30 + 1}*{i % 4 + 1}*{100 + i}#"
            return phone.call(CallerScript(["1", room, "1", "1"], message=Message(message)), from_=f"+86139{i:08d}")

        faults = Faults(
            kinds, rng, serve, recordings, None if args.postgres else database_url[len("sqlite:///") :], postgres
        )
        started = time.monotonic()
        faults.start()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(one_call, range(args.calls)))
        faults.done.set()
        faults.join()
        calls_seconds = time.monotonic() - started

        left = {sid: result.call_sid for result in results for sid, path in result.recordings.items() if path}
        database = Database(database_url)
        stack.callback(database.dispose)
        spool = workdir / "instance" / "spool"
        settle_started = time.monotonic()
        while any(spool.glob("*.json")) and time.monotonic() - settle_started < SETTLE_SECONDS:
            time.sleep(1)  # the server replays its spool first
        # The last safety net, as the periodic task runs it ten minutes later: recordings never heard of.
        reconciled = subprocess.run(
            [IVR, "twilio", "reconcile", "--settle", "0"], env=serve.environ, capture_output=True, text=True
        )
        while time.monotonic() - settle_started < SETTLE_SECONDS:
            stored = stored_messages(database, expected_sha)
            if set(left) <= stored:
                break
            time.sleep(1)
        settle_seconds = time.monotonic() - settle_started
        report = outcome(database, results, left, stored, expected_sha)
        if args.keep:
            stack.pop_all()
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)

    webhooks = [
        (exchange.seconds, exchange.url.rsplit("/twilio/", 1)[-1].split("?")[0])
        for result in results
        for exchange in result.requests
    ]
    slowest = max(webhooks)
    print(
        f"chaos: {args.calls} calls, {args.concurrency} at a time, "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}, seed {seed}, {calls_seconds:.0f} s of calls"
    )
    print(f"faults injected              {faults.log.describe()}")
    print(f"calls placed                 {len(results)}")
    print(f"calls Twilio could not reach {report['unreachable']}  (ivr serve was killed: Twilio's error voice)")
    print(f"messages left                {len(left)}")
    print(
        f"messages stored byte-exact   {report['stored']}/{len(left)}  (settled {settle_seconds:.0f} s after "
        f"the last call; {report['recovered']} recovered by reconciliation"
        f"{'' if reconciled.returncode == 0 else ', reconcile failed: ' + reconciled.stderr.strip()[-200:]})"
    )
    print(
        f"duplicates                   {report['duplicates']}  (tickets per call, recordings per sid, "
        f"applied webhooks per idempotency token)"
    )
    print(
        f"webhooks                     {len(webhooks)}, p95 {percentile([s for s, _ in webhooks], 0.95):.2f} s, "
        f"slowest {slowest[0]:.2f} s ({slowest[1]}), over 5 s: {sum(1 for s, _ in webhooks if s > 5)}"
    )
    lost = sorted(set(left) - stored)
    if lost:
        print(f"LOST: {len(lost)} message(s): " + ", ".join(f"{sid} (call {left[sid]})" for sid in lost[:10]))
    return 0 if not lost and report["duplicates"] == 0 else 1


def stored_messages(database: Database, expected_sha: str) -> set[str]:
    """Recording SIDs stored byte-exact on a ticket."""
    with database.session(read_only=True) as session:
        return set(
            session.scalars(
                select(Recording.recording_sid).where(
                    Recording.state == RecordingState.STORED,
                    Recording.sha256 == expected_sha,
                    Recording.ticket_id.is_not(None),
                )
            )
        )


def outcome(
    database: Database, results: list[CallResult], left: dict[str, str], stored: set[str], expected_sha: str
) -> dict[str, int]:
    with database.session(read_only=True) as session:
        tickets_per_call = session.execute(
            select(Ticket.call_id, func.count()).group_by(Ticket.call_id).having(func.count() > 1)
        ).all()
        tokens = session.execute(
            select(CallEvent.idempotency_token, func.count())
            .where(CallEvent.idempotency_token.is_not(None))
            .group_by(CallEvent.idempotency_token)
            .having(func.count() > 1)
        ).all()
        recovered = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.recovered.is_(True))) or 0
        known_calls = set(session.scalars(select(Call.call_sid)))
    return {
        "stored": len(set(left) & stored),
        "duplicates": len(tickets_per_call) + len(tokens),
        "recovered": recovered,
        "unreachable": sum(1 for r in results if any("11200" in e for e in r.errors) or r.call_sid not in known_calls),
    }


if __name__ == "__main__":
    raise SystemExit(main())
