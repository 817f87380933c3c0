"""Long recordings are decoded and transcribed a block at a time: memory stays flat whatever the length, and the
blocks add up to exactly what converting the whole file with pydub gives."""

from __future__ import annotations

import audioop
import io
import math
import shutil
import struct
import tracemalloc
import wave
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest
from pydub import AudioSegment

from ivr.speech.audio import open_audio, prepare_audio

requires_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")

PHONE_RATE = 8000
MODEL_RATE = 16000


def quiet_tone(frames: int, rate: int = PHONE_RATE) -> bytes:
    """A soft 440 Hz tone, 16-bit mono (one whole number of periods, so it can be repeated seamlessly)."""
    return b"".join(struct.pack("<h", int(300 * math.sin(2 * math.pi * 440 * n / rate))) for n in range(frames))


def write_long_wav(path: Path, seconds: int, *, channels: int = 1, mulaw: bool = False) -> None:
    """`seconds` of tone at 8 kHz, written a second at a time (the test itself never holds the whole file)."""
    second = quiet_tone(PHONE_RATE)
    if channels == 2:
        second = audioop.tostereo(second, 2, 1, 0.5)
    if mulaw:
        second = audioop.lin2ulaw(second, 2)
        fmt = struct.pack("<HHIIHH", 7, channels, PHONE_RATE, PHONE_RATE * channels, channels, 8)
        data_size = len(second) * seconds
        with path.open("wb") as out:
            out.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + data_size) + b"WAVE")
            out.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_size))
            for _ in range(seconds):
                out.write(second)
        return
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(PHONE_RATE)
        for _ in range(seconds):
            out.writeframes(second)


def peak_while(work: Callable[[], object]) -> tuple[object, int]:
    """What `work` returned and the most memory Python held for it at any moment (bytes)."""
    tracemalloc.start()
    try:
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def decoded_bytes(path: Path, rate: int = MODEL_RATE) -> list[int]:
    """Bytes per channel when every block is read (and dropped) as it comes."""
    with open_audio(path, rate) as stream:
        totals = [0] * len(stream.labels)
        for blocks in stream:
            for index, block in enumerate(blocks):
                totals[index] += len(block)
        return totals


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "dual-channel"])
def test_ten_minutes_of_wav_decode_with_flat_memory(tmp_path: Path, channels: int) -> None:
    path = tmp_path / "ten-minutes.wav"
    write_long_wav(path, 600, channels=channels)
    totals, peak = peak_while(lambda: decoded_bytes(path))
    per_channel = 600 * MODEL_RATE * 2
    assert totals == [pytest.approx(per_channel, abs=8)] * channels  # all of it, at 16 kHz, per channel
    print(f"10 min {channels}-channel WAV: {sum(totals):,} bytes decoded, tracemalloc peak {peak:,} bytes")
    assert peak < per_channel * channels / 50, f"peak {peak:,} bytes"


@requires_ffmpeg
def test_ten_minutes_of_mulaw_decode_through_ffmpeg_with_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "ten-minutes-ulaw.wav"
    write_long_wav(path, 600, mulaw=True)
    totals, peak = peak_while(lambda: decoded_bytes(path))
    assert totals == [pytest.approx(600 * MODEL_RATE * 2, abs=8)]
    print(f"10 min μ-law WAV via ffmpeg: {totals[0]:,} bytes decoded, tracemalloc peak {peak:,} bytes")
    assert peak < totals[0] / 50, f"peak {peak:,} bytes"


def wav(frames: bytes, *, channels: int, rate: int, width: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def pydub_whole(data: bytes, rate: int) -> list[bytes]:
    """The conversion the line used before it streamed: pydub on the whole file."""
    segment = AudioSegment(data=data).set_sample_width(2).set_frame_rate(rate)
    return [channel.raw_data for channel in segment.split_to_mono()]


NOISE = bytes((n * 7919 + (n >> 3) * 31) % 256 for n in range(48000 * 8))


@pytest.mark.parametrize(
    ("channels", "rate", "width"),
    [
        (1, 8000, 2),
        (2, 8000, 2),
        (1, 8000, 1),
        (1, 11025, 3),
        (2, 22050, 4),
        (2, 44100, 2),
        (1, 48000, 2),
        (1, 16000, 2),
    ],
)
@pytest.mark.parametrize("target", [8000, 16000])
@pytest.mark.parametrize("block_seconds", [0.25, 0.013])
def test_blocks_add_up_to_what_pydub_makes_of_the_whole_file(channels, rate, width, target, block_seconds) -> None:
    frames = rate * 2 + 3  # not a whole number of blocks
    data = wav(NOISE[: frames * channels * width], channels=channels, rate=rate, width=width)
    with open_audio(data, target, block_seconds=block_seconds) as stream:
        gathered = [b"".join(parts) for parts in zip(*stream, strict=True)]
    assert gathered == pydub_whole(data, target)
    assert [channel.pcm for channel in prepare_audio(data, target)] == pydub_whole(data, target)


def test_a_wav_cut_mid_sample_keeps_whole_frames_like_before() -> None:
    data = wav(NOISE[: 8000 * 4], channels=2, rate=8000, width=2)[:-3]
    with open_audio(data, 16000) as stream:
        gathered = [b"".join(parts) for parts in zip(*stream, strict=True)]
    assert gathered == pydub_whole(data[: len(data) - (len(data) - 44) % 4], 16000)


def test_an_odd_sized_chunk_before_the_samples_is_skipped_with_its_pad_byte() -> None:
    plain = wav(NOISE[:2000], channels=1, rate=8000, width=2)
    with_list = plain[:36] + b"LIST\x03\x00\x00\x00abc\x00" + plain[36:]  # RIFF pads odd chunks to even
    assert prepare_audio(with_list, 8000) == prepare_audio(plain, 8000)


@requires_ffmpeg
def test_stopping_early_stops_ffmpeg(tmp_path: Path) -> None:
    path = tmp_path / "ulaw.wav"
    write_long_wav(path, 60, mulaw=True)
    stream = open_audio(path, MODEL_RATE)
    first = next(iter(stream))
    assert len(first[0]) == pytest.approx(MODEL_RATE // 4 * 2, abs=4)  # a quarter of a second
    process = stream._decoder.process  # type: ignore[union-attr]
    stream.close()
    assert process.returncode is not None  # not left running (or a zombie) after the caller gave up


@pytest.mark.slow
def test_transcribing_a_long_recording_keeps_memory_flat(korean_model_path: Path, tmp_path: Path) -> None:
    from ivr.speech.engine import SpeechEngine

    engine = SpeechEngine.from_path(korean_model_path)
    path = tmp_path / "three-minutes.wav"
    write_long_wav(path, 180)
    [transcript], peak = peak_while(lambda: engine.transcribe_audio(path))
    decoded = 180 * engine.sample_rate * 2
    print(f"3 min WAV through Vosk: decoded {decoded:,} bytes, tracemalloc peak {peak:,} bytes")
    assert transcript.duration == pytest.approx(180, abs=0.01)
    assert peak < decoded / 20, f"peak {peak:,} bytes"


class RecordingRecogniser:
    """Stands in for vosk.KaldiRecognizer: keeps every chunk it is fed."""

    fed: ClassVar[list[list[bytes]]] = []

    def __init__(self, model: object, rate: float) -> None:
        self.chunks: list[bytes] | None = None  # one list per recording it transcribes

    def SetWords(self, on: bool) -> None:  # Vosk's names
        pass

    def Reset(self) -> None:
        self.chunks = None

    def AcceptWaveform(self, chunk: bytes) -> bool:
        if self.chunks is None:
            self.chunks = []
            RecordingRecogniser.fed.append(self.chunks)
        self.chunks.append(chunk)
        return len(self.chunks) % 3 == 0  # an end of segment now and then

    def Result(self) -> str:
        return '{"text": "", "result": []}'

    def FinalResult(self) -> str:
        return '{"text": ""}'


@pytest.mark.parametrize("channels", [1, 2])
def test_the_recogniser_gets_the_same_chunks_streamed_as_from_the_whole_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, channels: int
) -> None:
    """Vosk's segments depend on how its input is cut; streaming must cut it exactly as before (0.5 s from the
    start). Vosk itself is not deterministic on every input (its confidences, and a word now and then, vary
    from run to run in one process), so this is asserted on what it is fed."""
    from ivr.speech import engine as engine_module
    from ivr.speech.engine import LoadedModel, SpeechEngine

    monkeypatch.setattr(engine_module.vosk, "KaldiRecognizer", RecordingRecogniser)
    RecordingRecogniser.fed = []
    engine = SpeechEngine(LoadedModel(tmp_path, MODEL_RATE, model=None))
    path = tmp_path / "long.wav"
    write_long_wav(path, 7, channels=channels)
    streamed = engine.transcribe_audio(path)
    fed_streamed, RecordingRecogniser.fed = RecordingRecogniser.fed, []
    whole = [engine.transcribe(channel) for channel in prepare_audio(path, MODEL_RATE)]
    assert fed_streamed == RecordingRecogniser.fed
    assert [len(chunk) for chunk in fed_streamed[0]] == [MODEL_RATE // 2 * 2] * 13 + [MODEL_RATE - 2]
    assert [t.duration for t in streamed] == [t.duration for t in whole] == [pytest.approx(7, abs=0.001)] * channels
