"""Live transcription: the caller's audio, forked to us by Twilio while they record, decoded as it arrives.

A take is keyed by (CallSid, take number). The media WebSocket feeds it μ-law frames; a decoder pool sized
to the cores (threads at a lower scheduling priority than the web threads, so webhooks come first) turns
them into PCM at the model's rate and feeds one Vosk recogniser per take, 160 ms at a time. When the
caller presses #, the Record action `finish`es the take: what is still queued is decoded and the final
text comes back at once. Anything that goes wrong — more takes than the pool holds, a decoder falling
behind, a stream that never connects — only means the take is transcribed after the download, as before.
"""

from __future__ import annotations

import audioop
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any

from ivr.speech.engine import ChannelDecoder, Recognition, SpeechEngine

log = logging.getLogger(__name__)

TakeKey = tuple[str, int]  # (CallSid, the take's number on the call)

ULAW_RATE = 8000  # Twilio streams 8 kHz μ-law, one byte a sample
FEED_SECONDS = 0.16  # handed to a decoder at a time: Vosk's per-call overhead wants 100–200 ms, not 20 ms frames
MAX_LAG_SECONDS = 3.0  # a take whose audio waits this long for its decoder is given up (download path)
FINISH_WAIT_SECONDS = 1.5  # the Record action waits at most this for the last audio to be decoded
KEEP_ENDED_SECONDS = 120  # a take whose stream ended before its Record action arrived is kept this long
DECODER_NICENESS = 10  # decoder threads yield the cores to the web threads
TRANSCRIPTION_NICENESS = 15  # and the download path's transcription yields them to live takes


def lower_thread_priority(niceness: int) -> None:
    """Make the calling thread yield the CPU to normal threads (Linux schedules threads as tasks of their
    own; the niceness only ever goes up, never back)."""
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)


@dataclass
class LiveCounts:
    """What the pool has done since start-up (for /healthz and the benchmarks)."""

    opened: int = 0
    declined: int = 0
    given_up: int = 0
    finished: int = 0


class LiveTake:
    """One take being recognised while the caller speaks. The web threads call `feed`, `end` and `finish`;
    the decoder thread does the decoding."""

    def __init__(self, key: TakeKey, pool: LivePool, decoder: _Decoder) -> None:
        self.key = key
        self.state = "live"  # live → finishing → finished | given up | discarded
        self.reason = ""
        self.result: Recognition | None = None
        self.ended_at: float | None = None
        self._pool = pool
        self._decoder = decoder
        self._pending = bytearray()
        self._received = 0  # μ-law bytes fed
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._channel: ChannelDecoder | None = None  # made and used on the decoder thread only
        self._resample_state: Any = None

    @property
    def seconds_received(self) -> float:
        return self._received / ULAW_RATE

    def feed(self, ulaw: bytes) -> bool:
        """Add a frame of μ-law audio; False once the take no longer listens (finished or given up)."""
        with self._lock:
            if self.state != "live":
                return False
            self._received += len(ulaw)
            self._pending += ulaw
            if len(self._pending) >= FEED_SECONDS * ULAW_RATE:
                self._hand_over_locked()
            return True

    def end(self) -> None:
        """The stream ended (Twilio's stop, or the socket closed): decode what came, keep the text a while
        for a Record action still on its way."""
        with self._lock:
            self.ended_at = time.monotonic()
            if self.state == "live":
                self._hand_over_locked()
                self.state = "finishing"
                self._decoder.put(self, None)

    def finish(self, timeout: float = FINISH_WAIT_SECONDS) -> Recognition | None:
        """The caller pressed # (the Record action): the take's final text, or None if it cannot be had in
        `timeout` (given up, or decoding still behind): then the download path transcribes it."""
        with self._lock:
            if self.state == "live":
                self._hand_over_locked()
                self.state = "finishing"
                self._decoder.put(self, None)
        ready = self._done.wait(timeout)
        with self._lock:
            if not ready and self.state == "finishing":
                self._give_up_locked(f"the last audio was not decoded within {timeout} s")
            result = self.result if self.state == "finished" else None
        self._pool.forget(self)
        return result

    def discard(self) -> None:
        """Nothing of the take is wanted (it was empty): stop decoding it and free its place."""
        with self._lock:
            if self.state in ("live", "finishing"):
                self.state = "discarded"
                self._pending.clear()
                self._decoder.put(self, None)
        self._pool.forget(self)

    def _hand_over_locked(self) -> None:
        if self._pending:
            chunk = bytes(self._pending)
            self._pending.clear()
            self._decoder.put(self, chunk)

    def _give_up_locked(self, reason: str) -> None:
        self.state = "given up"
        self.reason = reason
        self._pending.clear()
        self._done.set()
        self._pool.given_up(self)
        log.warning("live take %s/%s given up: %s", *self.key, reason)

    # On the decoder thread.

    def decode(self, chunk: bytes | None, engine: SpeechEngine, waited: float) -> None:
        """Decode a chunk that waited `waited` seconds for the decoder (None: the end of the take)."""
        if self.state in ("given up", "discarded"):
            self._channel = None
            return
        if waited > MAX_LAG_SECONDS:
            with self._lock:
                self._give_up_locked(f"its audio waited {waited:.1f} s for a decoder")
            self._channel = None
            return
        if self._channel is None:
            self._channel = ChannelDecoder(engine, "mono", chunk_seconds=FEED_SECONDS, partials=True)
        if chunk is not None:
            pcm = audioop.ulaw2lin(chunk, 2)
            if engine.sample_rate != ULAW_RATE:
                pcm, self._resample_state = audioop.ratecv(
                    pcm, 2, 1, ULAW_RATE, engine.sample_rate, self._resample_state
                )
            self._channel.feed(pcm)
            return
        result = self._channel.finish()
        self._channel = None
        with self._lock:
            if self.state == "finishing":
                self.result = result
                self.state = "finished"
                self._done.set()

    @property
    def partial_text(self) -> str:
        """The running text of the take so far (segments heard and the one being heard)."""
        channel = self._channel
        if channel is None:
            return self.result.raw_text if self.result else ""
        said = [text for segment in channel.segments if (text := segment.get("text", "").strip())]
        return " ".join([*said, channel.partial] if channel.partial else said)


class _Decoder:
    """One decoder thread and the takes it decodes, in arrival order."""

    def __init__(self, number: int, engine: Callable[[], SpeechEngine]) -> None:
        self.takes = 0
        self._engine = engine
        self._queue: SimpleQueue[tuple[LiveTake, bytes | None, float] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"live-decoder-{number}", daemon=True)
        self._thread.start()

    def put(self, take: LiveTake, chunk: bytes | None) -> None:
        self._queue.put((take, chunk, time.monotonic()))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        lower_thread_priority(DECODER_NICENESS)
        while (item := self._queue.get()) is not None:
            take, chunk, queued_at = item
            try:
                take.decode(chunk, self._engine(), time.monotonic() - queued_at)
            except Exception:  # a broken take must not stop the others
                log.exception("live take %s/%s failed to decode", *take.key)
                with take._lock:
                    take._give_up_locked("the decoder failed")


class LivePool:
    """The takes being transcribed live, at most `capacity` at once, on `decoders` threads sharing one
    model (loaded by `engine()`, once)."""

    def __init__(self, engine: Callable[[], SpeechEngine], *, capacity: int, decoders: int | None = None) -> None:
        self.capacity = capacity
        self.counts = LiveCounts()
        self._engine_factory = engine
        self._engine: SpeechEngine | None = None
        self._engine_lock = threading.Lock()
        self._decoder_count = decoders or os.cpu_count() or 1
        self._decoders: list[_Decoder] = []
        self._takes: dict[TakeKey, LiveTake] = {}
        self._lock = threading.Lock()

    def engine(self) -> SpeechEngine:
        """The shared engine (the model is loaded by the first take, or by `warm_up`)."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = self._engine_factory()
            return self._engine

    def warm_up(self) -> None:
        """Load the model now rather than with the first caller's audio."""
        try:
            self.engine()
        except Exception:
            log.exception("the speech model could not be loaded for live transcription")

    def open(self, key: TakeKey) -> LiveTake | None:
        """Start a take, or None (declined: the pool is full, or the take is already open)."""
        with self._lock:
            self._forget_old_locked()
            live = sum(1 for take in self._takes.values() if take.state in ("live", "finishing"))
            if live >= self.capacity or key in self._takes:
                self.counts.declined += 1
                return None
            if not self._decoders:
                self._decoders = [_Decoder(n, self.engine) for n in range(self._decoder_count)]
            decoder = min(self._decoders, key=lambda d: d.takes)
            decoder.takes += 1
            take = LiveTake(key, self, decoder)
            self._takes[key] = take
            self.counts.opened += 1
            return take

    def find(self, key: TakeKey) -> LiveTake | None:
        with self._lock:
            return self._takes.get(key)

    @property
    def active(self) -> int:
        with self._lock:
            return sum(1 for take in self._takes.values() if take.state in ("live", "finishing"))

    def forget(self, take: LiveTake) -> None:
        with self._lock:
            if self._takes.get(take.key) is take:
                del self._takes[take.key]
                take._decoder.takes -= 1
                if take.state == "finished":
                    self.counts.finished += 1

    def given_up(self, take: LiveTake) -> None:
        self.counts.given_up += 1

    def close(self) -> None:
        """Stop the decoder threads (at shutdown)."""
        with self._lock:
            decoders, self._decoders = self._decoders, []
        for decoder in decoders:
            decoder.stop()

    def _forget_old_locked(self) -> None:
        now = time.monotonic()
        for key, take in list(self._takes.items()):
            if take.ended_at is not None and now - take.ended_at > KEEP_ENDED_SECONDS:
                del self._takes[key]
                take._decoder.takes -= 1
