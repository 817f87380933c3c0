"""Whoever is on the phone in an emulated call, and what they can do.

The emulator asks a `Caller` at each point where a real caller would act: keys or speech at <Gather>
(a `GatherRequest`), a message at <Record> (a `RecordRequest`), the far end at <Dial> (a
`DialRequest`); every prompt, sound and pause is told to `Caller.hear` as `Heard`. The answers are
steps: keys (str), `Speech`, `Message`, `DialOutcome`, `SILENCE` or `HANGUP`. `CallerScript` answers
from a list of steps for tests; `InteractiveCaller` asks a person at the keyboard.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeVar

# --- what the caller can do ----------------------------------------------------------------------


class Signal(enum.Enum):
    """A caller action that is neither keys nor a message."""

    SILENCE = "silence"
    HANGUP = "hangup"

    def __repr__(self) -> str:
        return self.name


SILENCE: Final = Signal.SILENCE
"""At <Gather>: no keys until the timeout. At <Record>: say nothing (an empty recording)."""
HANGUP: Final = Signal.HANGUP
"""Put the phone down at this point (before any input)."""


@dataclass(frozen=True)
class Message:
    """A spoken message for <Record>: the caller's audio and how the recording ended.

    `finish` is a key (ends the recording when it is in the verb's finishOnKey), `"hangup"` (the
    caller puts the phone down after speaking) or `"timeout"` (silence after speaking).
    """

    wav: str | Path
    finish: str = "#"


@dataclass(frozen=True)
class Speech:
    """Spoken words for a <Gather input="speech">: posted as SpeechResult and Confidence."""

    text: str
    confidence: float = 0.9


DialStatus = Literal["completed", "no-answer", "busy", "failed"]


@dataclass(frozen=True)
class DialOutcome:
    """What happens on the far end of a <Dial>.

    `status` is the DialCallStatus when the called party behaves as described; a ring longer than
    the Dial timeout turns "completed" into "no-answer", as on Twilio. `recording_wav` is the audio
    of the bridged call for `record="record-from-answer…"` (a 2-channel WAV for the dual modes;
    silence of `talk_seconds` is generated when omitted). `hangup_by="caller"` means the caller
    hung up during the conversation: the Dial action is still requested, its reply ignored.
    `answered_by` picks which <Number> answers (default the first).
    """

    status: DialStatus = "completed"
    ring_seconds: int = 5
    talk_seconds: int = 30
    recording_wav: str | Path | None = None
    hangup_by: Literal["caller", "callee"] = "callee"
    answered_by: str | None = None


Step = str | Signal | Message | Speech | DialOutcome
GatherAnswer = str | Speech | Signal
RecordAnswer = Message | Signal
DialAnswer = DialOutcome | Signal
Answer = TypeVar("Answer")  # what a typed choice stands for (a RecordAnswer, a DialAnswer)


# --- what the caller is asked and hears -----------------------------------------------------------


@dataclass(frozen=True)
class Heard:
    """Something the caller hears: a <Say>, a <Play>, a <Pause> or the recording beep."""

    kind: Literal["say", "play", "pause", "beep"]
    text: str = ""
    language: str = ""
    voice: str = ""
    url: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class GatherRequest:
    """The <Gather> the caller is being asked to answer."""

    num_digits: int | None
    finish_on_key: str
    timeout: int
    input: frozenset[str]
    action: str


@dataclass(frozen=True)
class RecordRequest:
    """The <Record> the caller is being asked to speak into."""

    max_length: int
    finish_on_key: str
    timeout: int
    play_beep: bool
    action: str


@dataclass(frozen=True)
class DialRequest:
    """The <Dial> being placed on the caller's behalf."""

    numbers: tuple[str, ...]
    timeout: int
    record: str
    action: str | None


class ScriptMismatch(Exception):
    """The caller script cannot answer the verb the call reached (a bug in the test's script)."""


class Caller:
    """Base class for whoever is on the phone. Subclasses answer the three kinds of question."""

    def hear(self, heard: Heard) -> None:
        """Told about every prompt, sound and pause, in order."""

    def answer_gather(self, request: GatherRequest) -> GatherAnswer:
        raise NotImplementedError

    def answer_record(self, request: RecordRequest) -> RecordAnswer:
        raise NotImplementedError

    def answer_dial(self, request: DialRequest) -> DialAnswer:
        raise NotImplementedError

    def unused_steps(self) -> list[Step]:
        """Scripted steps never reached (empty for a person)."""
        return []


class CallerScript(Caller):
    """Answers from a list of steps, in order, e.g. `CallerScript(["1", "3*2*501#", Message(wav), "1"])`.

    * <Gather> takes the next step: keys (str), `Speech`, `SILENCE` or `HANGUP`.
    * <Record> takes the next step if it is a `Message`, `SILENCE` or `HANGUP`; otherwise it uses the
      default `message` when one was given.
    * <Dial> takes the next step if it is a `DialOutcome` or `HANGUP`; otherwise the default
      `dial_outcome` when one was given.
    * When the steps run out, the caller hangs up.
    """

    def __init__(
        self,
        steps: Iterable[Step],
        *,
        message: Message | None = None,
        dial_outcome: DialOutcome | None = None,
    ) -> None:
        self.steps: list[Step] = list(steps)
        self.position = 0
        self.message = message
        self.dial_outcome = dial_outcome

    def _peek(self) -> Step | None:
        return self.steps[self.position] if self.position < len(self.steps) else None

    def _take(self) -> Step:
        step = self.steps[self.position]
        self.position += 1
        return step

    def _mismatch(self, step: Step, verb: str) -> ScriptMismatch:
        return ScriptMismatch(f"script step {self.position + 1} ({step!r}) cannot answer {verb}")

    def answer_gather(self, request: GatherRequest) -> GatherAnswer:
        step = self._peek()
        if step is None:
            return HANGUP
        if isinstance(step, str | Speech | Signal):
            self._take()
            return step
        raise self._mismatch(step, "<Gather>")

    def answer_record(self, request: RecordRequest) -> RecordAnswer:
        step = self._peek()
        if isinstance(step, Message | Signal):
            self._take()
            return step
        if self.message is not None:
            return self.message
        if step is None:
            return HANGUP
        raise self._mismatch(step, "<Record>")

    def answer_dial(self, request: DialRequest) -> DialAnswer:
        step = self._peek()
        if isinstance(step, DialOutcome) or step is HANGUP:
            self._take()
            return step
        if self.dial_outcome is not None:
            return self.dial_outcome
        if step is None:
            return HANGUP
        raise self._mismatch(step, "<Dial>")

    def unused_steps(self) -> list[Step]:
        return self.steps[self.position :]


class InteractiveCaller(Caller):
    """A person at the keyboard: keys for <Gather> (empty line = silence, `h` = hang up), a choice
    at <Record> and <Dial>. `ask` shows a prompt and returns the typed line (EOF hangs up).
    A fixed `dial_outcome` answers every <Dial> without asking."""

    def __init__(
        self,
        message_wav: str | Path,
        ask: Callable[[str], str] = input,
        dial_outcome: DialOutcome | None = None,
    ) -> None:
        self.message_wav = message_wav
        self.ask = ask
        self.dial_outcome = dial_outcome

    def _line(self, prompt: str) -> str | None:
        try:
            return self.ask(prompt).strip()
        except (EOFError, KeyboardInterrupt):
            return None

    def _choose(self, prompt: str, choices: Mapping[str, Answer]) -> Answer | Signal:
        """Ask until the typed line (any case) is one of `choices`; EOF hangs up."""
        while True:
            line = self._line(prompt)
            if line is None:
                return HANGUP
            if line.lower() in choices:
                return choices[line.lower()]

    def answer_gather(self, request: GatherRequest) -> GatherAnswer:
        while True:
            line = self._line("keys (Enter = silence, h = hang up)")
            if line is None or line.lower() == "h":
                return HANGUP
            if line == "":
                return SILENCE
            if all(key in "0123456789*#" for key in line):
                return line
            if "speech" in request.input:
                return Speech(line)

    def answer_record(self, request: RecordRequest) -> RecordAnswer:
        choices: dict[str, RecordAnswer] = {
            "": Message(self.message_wav, "#"),
            "h": Message(self.message_wav, "hangup"),
            "s": SILENCE,
            "x": HANGUP,
        }
        return self._choose(
            f"record: Enter = say {Path(self.message_wav).name} then #, h = say it then hang up, "
            "s = say nothing, x = hang up",
            choices,
        )

    def answer_dial(self, request: DialRequest) -> DialAnswer:
        if self.dial_outcome is not None:
            return self.dial_outcome
        choices: dict[str, DialAnswer] = {
            "": DialOutcome("completed"),
            "n": DialOutcome("no-answer", ring_seconds=request.timeout),
            "b": DialOutcome("busy", ring_seconds=0, talk_seconds=0),
            "f": DialOutcome("failed", ring_seconds=0, talk_seconds=0),
            "h": HANGUP,
        }
        return self._choose(
            f"dialling {', '.join(request.numbers)}: Enter = answered, n = no answer, b = busy, "
            "f = failed, h = hang up",
            choices,
        )
