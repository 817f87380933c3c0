"""Offline speech recognition with Vosk: one model per process shared by threads, one recogniser per stream."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import vosk

from ivr.config import DEFAULT_MODELS_DIR
from ivr.speech.audio import SAMPLE_WIDTH, AudioSource, PreparedChannel, open_audio
from ivr.speech.model_store import DEFAULT_MODEL_NAME, KNOWN_MODELS, model_layout_problems
from ivr.speech.text import normalise_transcript

DEFAULT_SAMPLE_RATE = 16000  # what Vosk models use unless conf/mfcc.conf says otherwise
LOW_CONFIDENCE_THRESHOLD = 0.6
CHUNK_SECONDS = 0.5  # audio fed to the recogniser per call

_SAMPLE_FREQUENCY = re.compile(r"^\s*--sample-frequency\s*=\s*(\d+(?:\.\d+)?)\s*$", re.MULTILINE)


class SpeechModelError(Exception):
    """The speech model cannot be used; the message says what to do."""


class ModelMissing(SpeechModelError):
    """No model at the configured path."""


class ModelInvalid(SpeechModelError):
    """Something is at the configured path, but Vosk cannot load it as a model."""


def resolve_model_path(setting: str | None, models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """Where the model is: `setting` (IVR_VOSK_MODEL) is a model name under `models_dir` when it has no
    path separator, otherwise a path (relative to the working directory); empty means the default model."""
    setting = (setting or "").strip()
    if not setting:
        return models_dir / DEFAULT_MODEL_NAME
    if "/" in setting or "\\" in setting or setting in (".", "..") or setting.startswith("~"):
        return Path(setting).expanduser().resolve()
    return models_dir / setting


def model_sample_rate(path: Path) -> int:
    """The sample rate the model was trained on: conf/mfcc.conf's --sample-frequency, else 16000."""
    try:
        conf = (path / "conf" / "mfcc.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return DEFAULT_SAMPLE_RATE
    match = _SAMPLE_FREQUENCY.search(conf)
    return int(float(match.group(1))) if match else DEFAULT_SAMPLE_RATE


MAX_SPARE_RECOGNISERS = 16


@dataclass(frozen=True)
class LoadedModel:
    """A Vosk model in memory with the rate its audio must have. Safe to share between threads.

    Recognisers are kept for reuse (`recogniser` / `recycle`): a new Vosk recogniser spends its audio about
    2.5 times the CPU of one that has been used before and Reset() (measured with the Korean model: 20 s of
    speech, 5.2–5.7 s of CPU fresh, 1.9–2.1 s reused). A reused one counts its word times from the first
    audio it was ever given, so each comes with that offset in seconds, to subtract."""

    path: Path
    sample_rate: int
    model: vosk.Model = field(repr=False, compare=False)
    _spare: list[tuple[vosk.KaldiRecognizer, float]] = field(default_factory=list, repr=False, compare=False)
    _spare_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def recogniser(self) -> tuple[vosk.KaldiRecognizer, float]:
        """A recogniser with word timings, fresh or reset, and the offset of its word times (seconds)."""
        with self._spare_lock:
            if self._spare:
                return self._spare.pop()
        recogniser = vosk.KaldiRecognizer(self.model, float(self.sample_rate))
        recogniser.SetWords(True)
        return recogniser, 0.0

    def recycle(self, recogniser: vosk.KaldiRecognizer, offset: float) -> None:
        """Give back a recogniser that is done with its audio (finished), whose next word times will be
        `offset` seconds late."""
        recogniser.Reset()
        with self._spare_lock:
            if len(self._spare) < MAX_SPARE_RECOGNISERS:
                self._spare.append((recogniser, offset))


_models: dict[Path, LoadedModel] = {}
_models_lock = threading.Lock()


def load_model(path: Path | str) -> LoadedModel:
    """Load the model at `path` once per process (later calls, from any thread, get the same one).
    Raises ModelMissing or ModelInvalid with what to do; never downloads anything."""
    path = Path(path).expanduser().resolve()
    with _models_lock:
        loaded = _models.get(path)
        if loaded is None:
            loaded = _load_uncached(path)
            _models[path] = loaded
        return loaded


def model_is_loaded(path: Path | str) -> bool:
    """Whether this process already holds the model at `path` in memory."""
    with _models_lock:
        return Path(path).expanduser().resolve() in _models


def _load_uncached(path: Path) -> LoadedModel:
    if not path.exists():
        fetch = f"ivr models fetch {path.name}" if path.name in KNOWN_MODELS else "ivr models fetch"
        raise ModelMissing(
            f"speech model not found: looked for {path}. Install it with `{fetch}` "
            "(or point IVR_VOSK_MODEL at a model folder)"
        )
    problems = model_layout_problems(path)
    if problems:
        raise ModelInvalid(
            f"{path} is not a Vosk model ({'; '.join(problems)}). Reinstall it with "
            f"`ivr models fetch --force {path.name}`, or point IVR_VOSK_MODEL at a model folder"
        )
    vosk.SetLogLevel(-1)
    try:
        model = vosk.Model(str(path))
    except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
        raise ModelInvalid(
            f"Vosk could not load the model at {path} ({exc}): its files may be damaged. "
            f"Reinstall it with `ivr models fetch --force {path.name}`"
        ) from exc
    return LoadedModel(path=path, sample_rate=model_sample_rate(path), model=model)


@dataclass(frozen=True)
class Word:
    """One recognised word with its time span in seconds and Vosk's confidence (0–1)."""

    word: str
    start: float
    end: float
    conf: float
    low_confidence: bool = False


@dataclass(frozen=True)
class Recognition:
    """What the engine recognised on one channel: normalised text for tickets, Vosk's raw text, and timed
    words (stored as an ivr.models.Transcript)."""

    text: str
    raw_text: str
    words: list[Word]
    duration: float
    channel: str = "mono"

    @property
    def low_confidence_words(self) -> list[Word]:
        return [word for word in self.words if word.low_confidence]

    @property
    def is_empty(self) -> bool:
        return not self.raw_text

    @property
    def mean_confidence(self) -> float | None:
        """Vosk's mean word confidence (0–1), None when no word was recognised."""
        return sum(word.conf for word in self.words) / len(self.words) if self.words else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (for the API, the CLI and job results)."""
        return {
            "channel": self.channel,
            "duration": round(self.duration, 3),
            "text": self.text,
            "raw_text": self.raw_text,
            "words": [
                {
                    "word": word.word,
                    "start": round(word.start, 3),
                    "end": round(word.end, 3),
                    "conf": round(word.conf, 3),
                    "low_confidence": word.low_confidence,
                }
                for word in self.words
            ],
        }


class SpeechEngine:
    """Transcribes prepared audio with one shared model; each call uses its own recogniser, so one engine
    can serve many threads at once."""

    def __init__(self, model: LoadedModel, low_confidence_threshold: float = LOW_CONFIDENCE_THRESHOLD) -> None:
        self.model = model
        self.low_confidence_threshold = low_confidence_threshold

    @classmethod
    def from_path(cls, path: Path | str, low_confidence_threshold: float = LOW_CONFIDENCE_THRESHOLD) -> SpeechEngine:
        """An engine on the (cached) model at `path`."""
        return cls(load_model(path), low_confidence_threshold)

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    def transcribe(self, channel: PreparedChannel) -> Recognition:
        """Recognise one channel. Silence or empty audio gives an empty transcript, not an error."""
        if channel.sample_rate != self.sample_rate:
            raise ValueError(
                f"audio is {channel.sample_rate} Hz but the model needs {self.sample_rate} Hz: "
                "prepare it with prepare_audio(source, engine.sample_rate)"
            )
        decoder = ChannelDecoder(self, channel.label)
        decoder.feed(channel.pcm)
        return decoder.finish()

    def transcribe_audio(self, source: AudioSource) -> list[Recognition]:
        """Decode a recording (bytes or path) and transcribe each of its channels, feeding the recognisers as
        the audio is decoded: memory stays flat however long the recording."""
        with open_audio(source, self.sample_rate) as stream:
            decoders = [ChannelDecoder(self, label) for label in stream.labels]
            for blocks in stream:
                for decoder, block in zip(decoders, blocks, strict=True):
                    decoder.feed(block)
            return [decoder.finish() for decoder in decoders]

    def _word(self, item: dict[str, Any], offset: float = 0.0) -> Word:
        conf = float(item.get("conf", 1.0))
        return Word(
            word=str(item["word"]),
            start=max(0.0, round(float(item["start"]) - offset, 6)),
            end=max(0.0, round(float(item["end"]) - offset, 6)),
            conf=conf,
            low_confidence=conf < self.low_confidence_threshold,
        )


class ChannelDecoder:
    """One channel's recogniser, fed PCM in any pieces; it hands Vosk `chunk_seconds` at a time from the start
    of the audio (the same chunks however the audio arrives, so the same words and timings). With
    `partials`, `partial` holds the words of the segment still being heard (a live take's running text)."""

    def __init__(
        self, engine: SpeechEngine, label: str, *, chunk_seconds: float = CHUNK_SECONDS, partials: bool = False
    ) -> None:
        self.engine = engine
        self.label = label
        self.recogniser, self._offset = engine.model.recogniser()
        self.chunk = int(engine.sample_rate * chunk_seconds) * SAMPLE_WIDTH
        self.segments: list[dict[str, Any]] = []
        self.received = 0
        self.partial = ""
        self._partials = partials
        self._pending = b""

    def feed(self, pcm: bytes) -> None:
        self.received += len(pcm)
        data = self._pending + pcm if self._pending else pcm
        whole = len(data) - len(data) % self.chunk
        for offset in range(0, whole, self.chunk):
            self._accept(data[offset : offset + self.chunk])
        self._pending = data[whole:]

    @property
    def seconds(self) -> float:
        """Audio received so far."""
        return self.received // SAMPLE_WIDTH / self.engine.sample_rate

    def _accept(self, chunk: bytes) -> None:
        if self.recogniser.AcceptWaveform(chunk):
            self.segments.append(json.loads(self.recogniser.Result()))
            self.partial = ""
        elif self._partials:
            self.partial = str(json.loads(self.recogniser.PartialResult()).get("partial", ""))

    def finish(self) -> Recognition:
        if self._pending:
            self._accept(self._pending)
            self._pending = b""
        segments = [*self.segments, json.loads(self.recogniser.FinalResult())]
        # Vosk counts every sample it was given, this take's included, in the next take's word times.
        self.engine.model.recycle(
            self.recogniser, self._offset + self.received // SAMPLE_WIDTH / self.engine.sample_rate
        )
        words = [self.engine._word(item, self._offset) for segment in segments for item in segment.get("result", ())]
        raw_text = " ".join(text for segment in segments if (text := segment.get("text", "").strip()))
        return Recognition(
            text=normalise_transcript(raw_text),
            raw_text=raw_text,
            words=words,
            duration=self.seconds,
            channel=self.label,
        )
