#!/usr/bin/env python3
"""Load test: many concurrent emulated calls against a real `ivr serve`; prints webhook latency
(p50/p95/max) and whether every message was stored byte-exact.

    .venv/bin/python -m scripts.load_calls --calls 200 --concurrency 20

By default it starts its own server (SQLite, embedded worker) in a temporary instance folder;
`--database-url` points that server at another database (e.g. PostgreSQL).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from ivr.devphone.audio import write_tone_wav
from ivr.devphone.callers import Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.recording_server import RecordingServer
from ivr.devphone.transport import HttpTransport, Reply
from scripts.benchkit import ivr, local_server, percentile

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "load-test-auth-token"


class TimedTransport(HttpTransport):
    """HttpTransport that records how long each webhook took."""

    def __init__(self, server_url: str, public_url: str) -> None:
        super().__init__(server_url, public_url)
        self.latencies: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def request(self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
        started = time.perf_counter()
        reply = super().request(method, url, params, headers)
        elapsed = time.perf_counter() - started
        with self._lock:
            self.latencies.append((url.rsplit("/twilio/", 1)[-1].split("?")[0], elapsed))
        return reply


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--threads", type=int, default=16, help="server threads")
    parser.add_argument("--database-url", help="database for the server (default: SQLite in a temp folder)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ivr-load-"))
    settings = {
        "IVR_DUTY_NUMBERS": "+8613800000001",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "IVR_SECRET_KEY": "load-test-" + "k" * 32,
    }
    if args.database_url:
        settings["IVR_DATABASE_URL"] = args.database_url
    with local_server(workdir, settings, "--threads", str(args.threads)) as (public_url, env):
        token = ivr(env, "token", "create", "load", "--service").strip().splitlines()[-1]
        message = write_tone_wav(workdir / "message.wav", seconds=3.0)
        expected_sha = hashlib.sha256(message.read_bytes()).hexdigest()
        transport = TimedTransport(public_url, public_url)
        with RecordingServer(ACCOUNT_SID, AUTH_TOKEN) as recordings:
            phone = TwilioEmulator(transport, public_url, ACCOUNT_SID, AUTH_TOKEN, recordings)

            def one_call(i: int) -> tuple[str, bool]:
                keys = ["1", f"{i % 30 + 1}*{i % 4 + 1}*{100 + i}#", "1", Message(message), "1"]
                result = phone.call(keys, from_=f"+86139{i:08d}")
                return result.call_sid, result.ok

            started = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                outcomes = list(pool.map(one_call, range(args.calls)))
            call_seconds = time.perf_counter() - started

            # Wait for the downloads to land, then check every message through the API.
            headers = {"Authorization": f"Bearer {token}"}
            deadline = time.time() + 120
            stored = 0
            while time.time() < deadline:
                tickets = []
                offset = 0
                while True:
                    page = requests.get(
                        f"{public_url}/api/tickets?limit=200&offset={offset}", headers=headers, timeout=10
                    ).json()["tickets"]
                    tickets += page
                    offset += len(page)
                    if len(page) < 200:
                        break
                stored = sum(1 for t in tickets for r in t["recordings"] if r["sha256"] == expected_sha)
                if stored >= args.calls:
                    break
                time.sleep(0.5)
            drain_seconds = time.perf_counter() - started - call_seconds

    webhook = [seconds * 1000 for _, seconds in transport.latencies]
    failed_calls = sum(1 for _, ok in outcomes if not ok)
    print(
        f"calls: {args.calls} at concurrency {args.concurrency}, server threads {args.threads}, "
        f"database {'SQLite' if not args.database_url else args.database_url.split(':')[0]}"
    )
    print(f"webhooks: {len(webhook)} in {call_seconds:.1f}s ({len(webhook) / call_seconds:.0f}/s)")
    print(
        f"webhook latency ms: p50 {statistics.median(webhook):.1f}  p95 {percentile(webhook, 0.95):.1f}  "
        f"max {max(webhook):.1f}"
    )
    by_step: dict[str, list[float]] = {}
    for step, seconds in transport.latencies:
        by_step.setdefault(step, []).append(seconds * 1000)
    slowest = sorted(by_step.items(), key=lambda item: -percentile(item[1], 0.95))[:3]
    print(
        "slowest steps (p95 / max ms): "
        + ", ".join(f"{step} {percentile(values, 0.95):.0f} / {max(values):.0f}" for step, values in slowest)
    )
    print(f"calls with errors: {failed_calls}")
    print(f"messages stored byte-exact: {stored}/{args.calls} (all stored {drain_seconds:.1f}s after the last call)")
    return 0 if failed_calls == 0 and stored == args.calls else 1


if __name__ == "__main__":
    raise SystemExit(main())
