"""The line's outbound calls ringing the terminal (`ivr call --answer-outbound`): the keyboard read with a
deadline, the ring, and each call the line places (POST Calls.json to the dev phone's recording server)
answered, refused or left ringing, then played by the emulator as Twilio would."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO
from urllib.parse import parse_qs, urlsplit

import click

from ivr.devphone.callers import Caller
from ivr.devphone.emulator import OutboundOutcome, TwilioEmulator
from ivr.devphone.recording_server import PlacedCall, RecordingServer
from ivr.devphone.results import CallResult

ANSWER = ""  # the line typed at the ring: Enter answers
REFUSE = "n"
WAIT_STEP = 0.5  # seconds between looks for a placed call: Ctrl-C is seen at once either way


class Keyboard:
    """Lines typed at the terminal, read by one daemon thread, so a ringing phone can wait for a reaction with
    a deadline while the prompts of an answered call wait as long as it takes."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._lines: queue.Queue[str | None] = queue.Queue()  # None: the input has ended
        self.ended = False
        threading.Thread(target=self._read, name="devphone-keyboard", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                line = self._stream.readline()
            except (OSError, ValueError):  # the stream was closed under us: as good as its end
                line = ""
            if not line:
                self._lines.put(None)
                return
            self._lines.put(line.rstrip("\r\n"))

    def line(self, timeout: float | None = None) -> str | None:
        """The next typed line, or None when `timeout` seconds passed first; EOFError once the input ended."""
        if self.ended:
            raise EOFError
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            self.ended = True
            raise EOFError
        return line

    def ask(self, prompt: str) -> str:
        """`InteractiveCaller`'s question: show the prompt, wait for a line (EOFError at the end of input)."""
        click.echo(f"{prompt}: ", nl=False)
        while True:
            line = self.line(timeout=WAIT_STEP)
            if line is not None:
                return line


def purpose(placed: PlacedCall) -> str:
    """What the line calls for, as its Url says: 回访 (a follow-up), 回拨 (a staff call-back), else 外呼."""
    query = parse_qs(urlsplit(placed.url).query)
    if "follow_up" in query:
        return "回访"
    if "call_back" in query:
        return "回拨"
    return "外呼"


def ring(keyboard: Keyboard, placed: PlacedCall, seconds: float) -> tuple[OutboundOutcome, float]:
    """Ring the terminal: Enter answers ("completed"), n refuses ("busy"), no reaction within `seconds` or the
    end of input is "no-answer". Returns the outcome and how long it rang."""
    click.echo(f"来电 {placed.from_} ({purpose(placed)}) — 按回车接听,输入 {REFUSE} 拒接")
    started = time.monotonic()
    while (left := started + seconds - time.monotonic()) > 0:
        try:
            line = keyboard.line(timeout=left)
        except EOFError:
            break
        if line is None:
            break
        if line.strip() == ANSWER:
            return "completed", time.monotonic() - started
        if line.strip().lower() == REFUSE:
            click.echo("✆ 拒接 (busy)")
            return "busy", time.monotonic() - started
        click.echo(f"按回车接听,输入 {REFUSE} 拒接")
    click.echo(f"✆ 未接听 (no-answer after {seconds:g}s)")
    return "no-answer", seconds


def answer_outbound_calls(
    emulator: TwilioEmulator,
    recordings: RecordingServer,
    callee: Callable[[], Caller],
    *,
    keyboard: Keyboard | None,
    outcome: OutboundOutcome | None,
    ring_seconds: float,
    calls: int = 0,
) -> Iterator[CallResult]:
    """Each call the line places with `recordings`, in turn, until `calls` were taken (0: until Ctrl-C or the
    end of the keyboard's input): rung on the `keyboard` unless `outcome` is fixed, then played by `emulator`
    with a new `callee()` when answered. Yields each call's result."""
    taken = 0
    while not calls or taken < calls:
        placed = recordings.next_placed_call(taken, WAIT_STEP)
        if placed is None:
            continue
        taken += 1
        click.echo(f"— the line calls {placed.to} ({placed.sid})")
        if keyboard is None or outcome is not None:
            decided = outcome or "completed"
            rang = ring_seconds if decided == "no-answer" else 0.0
        else:
            decided, rang = ring(keyboard, placed, ring_seconds)
        ring_for = max(1, round(rang))
        if decided == "completed":
            yield emulator.answer_outbound(placed, callee(), ring_seconds=ring_for)
        else:
            yield emulator.answer_outbound(placed, outcome=decided, ring_seconds=ring_for)
        if keyboard is not None and keyboard.ended:
            click.echo("input ended: no more calls are answered")
            return
