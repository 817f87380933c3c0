"""The WAV audio of an emulated call: the caller's message read from a file, cut at <Record maxLength>,
silence for a recorded <Dial> without audio, and a tone to stand in for a spoken message."""

from __future__ import annotations

import io
import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Audio:
    """A WAV file's bytes, its length in seconds and its channel count."""

    data: bytes
    duration: float
    channels: int


def read_audio(path: str | Path) -> Audio:
    """The caller's audio and its length; a missing or non-WAV file is a test bug and raises."""
    data = Path(path).read_bytes()
    with wave.open(io.BytesIO(data)) as reader:
        frames, rate, channels = reader.getnframes(), reader.getframerate(), reader.getnchannels()
    return Audio(data, frames / rate if rate else 0.0, channels)


def truncated(audio: Audio, seconds: int) -> Audio:
    """The first `seconds` of a WAV, as Twilio keeps only up to maxLength."""
    with wave.open(io.BytesIO(audio.data)) as reader:
        params = reader.getparams()
        frames = reader.readframes(int(seconds * params.framerate))
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setparams(params)
        writer.writeframes(frames)
    return Audio(out.getvalue(), float(seconds), params.nchannels)


def silent_audio(seconds: float, channels: int, rate: int = 8000) -> Audio:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x00\x00" * channels * int(seconds * rate))
    return Audio(out.getvalue(), float(seconds), channels)


def write_tone_wav(path: str | Path, seconds: float = 2.0, frequency: float = 440.0, rate: int = 8000) -> Path:
    """Write a mono 16-bit PCM tone (a stand-in for a spoken message) and return its path."""
    path = Path(path)
    samples = (int(8000 * math.sin(2 * math.pi * frequency * i / rate)) for i in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"".join(struct.pack("<h", sample) for sample in samples))
    return path
