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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any

from ivr.speech.engine import ChannelDecoder, Recognition, SpeechEngine

log = logging.getLogger(__name__)

TakeKey = tuple[str, int]  # (CallSid, the take's number on the call)

ULAW_RATE = 8000  # Twilio streams 8 kHz μ-law, one byte a sample
FEED_SECONDS = 0.16  # handed to a decoder at a time: Vosk's per-call overhead wants 100–200 ms, not 20 ms frames
MAX_LAG_SECONDS = 6.0  # a take whose audio waits this long for a decoder cannot catch up: given up
SHED_AFTER_SECONDS = 2.0  # audio this late means more takes than the cores carry: the newest gives way,
SHED_EVERY_SECONDS = 3.0  # at most this often (a take's first second costs Vosk ~0.8 s: starts come in bursts)
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
    the pool's decoder threads decode its chunks, one at a time and in order."""

    def __init__(self, key: TakeKey, pool: LivePool) -> None:
        self.key = key
        self.state = "live"  # live → finishing → finished | given up | discarded
        self.reason = ""
        self.result: Recognition | None = None
        self.ended_at: float | None = None
        self._pool = pool
        self._pending = bytearray()  # frames not yet a whole chunk
        self._chunks: deque[tuple[bytes | None, float]] = deque()  # (chunk or None = the end, when queued)
        self._scheduled = False  # waiting for, or in, a decoder thread
        self._received = 0  # μ-law bytes fed
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._channel: ChannelDecoder | None = None  # used by one decoder thread at a time
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
                self._queue_locked(bytes(self._pending))
                self._pending.clear()
            return True

    def end(self) -> None:
        """The stream ended (Twilio's stop, or the socket closed): decode what came, keep the text a while
        for a Record action still on its way."""
        with self._lock:
            self.ended_at = time.monotonic()
            self._last_audio_locked()

    def finish(self, timeout: float = FINISH_WAIT_SECONDS) -> Recognition | None:
        """The caller pressed # (the Record action): the take's final text, or None if it cannot be had in
        `timeout` (given up, or decoding still behind): then the download path transcribes it."""
        with self._lock:
            self._last_audio_locked()
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
                self._chunks.clear()
        self._pool.forget(self)

    def _last_audio_locked(self) -> None:
        if self.state == "live":
            if self._pending:
                self._queue_locked(bytes(self._pending))
                self._pending.clear()
            self._queue_locked(None)
            self.state = "finishing"

    def _queue_locked(self, chunk: bytes | None) -> None:
        self._chunks.append((chunk, time.monotonic()))
        if not self._scheduled:
            self._scheduled = True
            self._pool.ready(self)

    def _give_up_locked(self, reason: str) -> None:
        self.state = "given up"
        self.reason = reason
        self._pending.clear()
        self._chunks.clear()
        self._done.set()
        self._pool.given_up(self)
        log.warning("live take %s/%s given up: %s", *self.key, reason)

    def give_up(self, reason: str) -> None:
        with self._lock:
            if self.state in ("live", "finishing"):
                self._give_up_locked(reason)

    @property
    def partial_text(self) -> str:
        """The running text of the take so far (segments heard and the one being heard)."""
        channel = self._channel
        if channel is None:
            return self.result.raw_text if self.result else ""
        said = [text for segment in channel.segments if (text := segment.get("text", "").strip())]
        return " ".join([*said, channel.partial] if channel.partial else said)

    # On a decoder thread.

    def decode_next(self, engine: SpeechEngine) -> float | None:
        """Decode the take's oldest chunk; how long it waited (None: nothing was left). The take goes back
        in the ready queue when more is waiting, so every take gets a turn."""
        with self._lock:
            if not self._chunks or self.state in ("given up", "discarded"):
                self._rest_locked()
                return None
            chunk, queued_at = self._chunks.popleft()
        waited = time.monotonic() - queued_at
        if waited > MAX_LAG_SECONDS:
            self.give_up(f"its audio waited {waited:.1f} s for a decoder")
        else:
            self._decode(chunk, engine)
        with self._lock:
            if self._chunks and self.state not in ("given up", "discarded"):
                self._pool.ready(self)
            else:
                self._rest_locked()
        return waited

    def _rest_locked(self) -> None:
        """Out of the ready queue until more audio comes; a take that is over lets its recogniser go."""
        self._scheduled = False
        if self.state in ("given up", "discarded"):
            self._channel = None

    def _decode(self, chunk: bytes | None, engine: SpeechEngine) -> None:
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


class LivePool:
    """The takes being transcribed live, at most `capacity` at once, on `decoders` threads sharing one
    model (loaded by `engine()`, once). Any free decoder takes the next take with audio waiting, so one
    take's slow chunk (Vosk takes up to ~0.7 s on some) holds up only that take."""

    def __init__(self, engine: Callable[[], SpeechEngine], *, capacity: int, decoders: int | None = None) -> None:
        self.capacity = capacity
        self.counts = LiveCounts()
        self._engine_factory = engine
        self._engine: SpeechEngine | None = None
        self._engine_lock = threading.Lock()
        self._decoder_count = decoders or os.cpu_count() or 1
        self._threads: list[threading.Thread] = []
        self._ready: SimpleQueue[LiveTake | None] = SimpleQueue()
        self._takes: dict[TakeKey, LiveTake] = {}  # in the order they opened
        self._lock = threading.Lock()
        self._next_shed = 0.0

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
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._decode_forever, name=f"live-decoder-{n}", daemon=True)
                    for n in range(self._decoder_count)
                ]
                for thread in self._threads:
                    thread.start()
            take = LiveTake(key, self)
            self._takes[key] = take
            self.counts.opened += 1
            return take

    def find(self, key: TakeKey) -> LiveTake | None:
        with self._lock:
            return self._takes.get(key)

    def latest(self, call_sid: str) -> LiveTake | None:
        """The call's most recently opened take still held here."""
        with self._lock:
            takes = [take for (sid, _), take in self._takes.items() if sid == call_sid]
            return takes[-1] if takes else None

    @property
    def active(self) -> int:
        with self._lock:
            return sum(1 for take in self._takes.values() if take.state in ("live", "finishing"))

    def ready(self, take: LiveTake) -> None:
        """`take` has audio waiting for a decoder."""
        self._ready.put(take)

    def forget(self, take: LiveTake) -> None:
        with self._lock:
            if self._takes.get(take.key) is take:
                del self._takes[take.key]
                if take.state == "finished":
                    self.counts.finished += 1

    def given_up(self, take: LiveTake) -> None:
        self.counts.given_up += 1

    def close(self) -> None:
        """Stop the decoder threads (at shutdown)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._ready.put(None)
        for thread in threads:
            thread.join(timeout=5)

    def _decode_forever(self) -> None:
        lower_thread_priority(DECODER_NICENESS)
        while (take := self._ready.get()) is not None:
            try:
                waited = take.decode_next(self.engine())
            except Exception:  # a broken take must not stop the others
                log.exception("live take %s/%s failed to decode", *take.key)
                take.give_up("the decoder failed")
                continue
            if waited is not None and waited > SHED_AFTER_SECONDS:
                self._shed_newest_take()

    def _shed_newest_take(self) -> None:
        """More audio than the decoders keep up with: the newest live take gives way (the download path
        transcribes it), rather than every take falling behind together. At most every SHED_EVERY_SECONDS:
        the backlog needs a moment to drain once a take has gone."""
        with self._lock:
            now = time.monotonic()
            if now < self._next_shed:
                return
            self._next_shed = now + SHED_EVERY_SECONDS
            live = [take for take in self._takes.values() if take.state == "live"]
        if len(live) > 1:
            live[-1].give_up("the decoders fell behind: the newest take gave way")

    def _forget_old_locked(self) -> None:
        now = time.monotonic()
        for key, take in list(self._takes.items()):
            if take.ended_at is not None and now - take.ended_at > KEEP_ENDED_SECONDS:
                del self._takes[key]
