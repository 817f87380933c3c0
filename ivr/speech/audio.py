"""Turn a recording (Twilio WAV, μ-law WAV or MP3) into mono 16-bit PCM channels at the model's rate.

Audio is decoded a block at a time (`open_audio`), so memory stays flat however long the recording: PCM WAV is
read from the file, μ-law / A-law WAV and MP3 come from ffmpeg through a pipe, and each block is converted
(sample width, then rate with its state carried over, then split into channels) exactly as pydub converts a
whole file. `prepare_audio` gathers the blocks for callers that want the whole channel.
"""

from __future__ import annotations

import audioop
import contextlib
import io
import os
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from pydub import AudioSegment

SAMPLE_WIDTH = 2  # bytes: 16-bit signed little-endian, what Vosk expects
BLOCK_SECONDS = 0.25  # audio decoded at a time

# Twilio's dual-channel recordings put the caller's leg first and the dialled (staff) leg second.
DUAL_CHANNEL_LABELS = ("caller", "staff")
MONO_LABEL = "mono"

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# WAV encodings ffmpeg decodes for us; plain PCM is read directly.
FFMPEG_WAV_CODECS = {WAVE_FORMAT_ALAW: "pcm_alaw", WAVE_FORMAT_MULAW: "pcm_mulaw"}
_FMT_BYTES_READ = 64  # of a `fmt ` chunk: the 16 we use and the extensible part; the rest is skipped

AudioSource = bytes | str | os.PathLike[str]


class UnreadableAudio(ValueError):
    """The recording cannot be decoded; the message says why (empty, corrupt, unsupported, no ffmpeg)."""


@dataclass(frozen=True)
class PreparedChannel:
    """One channel of a recording as mono 16-bit little-endian PCM at `sample_rate`."""

    label: str
    pcm: bytes
    sample_rate: int

    @property
    def frame_count(self) -> int:
        return len(self.pcm) // SAMPLE_WIDTH

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frame_count / self.sample_rate


def prepare_audio(source: AudioSource, target_rate: int) -> list[PreparedChannel]:
    """Decode `source` (bytes or a file path) into one PreparedChannel per channel (mono: one; dual: caller,
    staff), each mono 16-bit PCM at `target_rate`. The original bytes or file are only read."""
    with open_audio(source, target_rate) as stream:
        gathered = [bytearray() for _ in stream.labels]
        for blocks in stream:
            for channel, block in zip(gathered, blocks, strict=True):
                channel += block
        return [
            PreparedChannel(label, bytes(pcm), target_rate) for label, pcm in zip(stream.labels, gathered, strict=True)
        ]


@dataclass(frozen=True)
class _WavFormat:
    """What a WAV header says about its samples."""

    channels: int
    sample_rate: int
    sample_width: int  # bytes

    @property
    def frame_width(self) -> int:
        return self.channels * self.sample_width


class AudioStream:
    """A recording being decoded block by block: iterate for tuples of PCM blocks, one per channel (mono 16-bit
    at `sample_rate`, labelled by `labels`). Errors found in the header are raised by open_audio; a decoder
    that fails later (ffmpeg) raises UnreadableAudio from the iteration. Close it (or use `with`)."""

    def __init__(
        self,
        name: str,
        reader: IO[bytes],
        data_length: int | None,
        wav: _WavFormat,
        target_rate: int,
        *,
        block_seconds: float,
        decoder: _FfmpegDecoder | None = None,
    ) -> None:
        self.name = name
        self.sample_rate = target_rate
        self.labels = (MONO_LABEL,) if wav.channels == 1 else DUAL_CHANNEL_LABELS
        self._reader = reader
        self._left = data_length  # None: to the end of the stream
        self._wav = wav
        self._block_bytes = max(1, round(wav.sample_rate * block_seconds)) * wav.frame_width
        self._decoder = decoder

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()
        if self._decoder is not None:
            self._decoder.close()

    def __iter__(self) -> Iterator[tuple[bytes, ...]]:
        wav = self._wav
        state: Any = None
        while True:
            size = self._block_bytes if self._left is None else min(self._block_bytes, self._left)
            block = self._reader.read(size) if size else b""
            if self._left is not None:
                self._left -= len(block)
            # A recording cut off mid-sample (an interrupted upload) still holds everything before the cut.
            block = block[: len(block) - len(block) % wav.frame_width]
            if not block:
                break
            if wav.sample_width == 1:
                block = audioop.bias(block, 1, -128)  # WAV's 8-bit samples are unsigned
            if wav.sample_width != SAMPLE_WIDTH:
                block = audioop.lin2lin(block, wav.sample_width, SAMPLE_WIDTH)
            if wav.sample_rate != self.sample_rate:
                block, state = audioop.ratecv(
                    block, SAMPLE_WIDTH, wav.channels, wav.sample_rate, self.sample_rate, state
                )
            if wav.channels == 1:
                yield (block,)
            else:
                samples = memoryview(block).cast("h")
                yield samples[0::2].tobytes(), samples[1::2].tobytes()
        if self._decoder is not None:
            self._decoder.check_finished(self.name)


def open_audio(source: AudioSource, target_rate: int, *, block_seconds: float = BLOCK_SECONDS) -> AudioStream:
    """Start decoding `source` (bytes or a file path) into mono 16-bit PCM channels at `target_rate`.
    Raises UnreadableAudio at once for an empty, unsupported or corrupt recording."""
    if target_rate <= 0:
        raise ValueError(f"target_rate must be positive, not {target_rate}")
    name, reader = _open_source(source)
    try:
        head = reader.read(12)
        if not head:
            raise UnreadableAudio(f"{name}: empty (0 bytes)")
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            audio_format, fmt, data_length = _read_wav_header(reader, name)
            if audio_format in (WAVE_FORMAT_PCM, WAVE_FORMAT_EXTENSIBLE):
                wav = _pcm_format(fmt, name)
                return AudioStream(name, reader, data_length, wav, target_rate, block_seconds=block_seconds)
            _check_encoding(audio_format, name)
            codec = FFMPEG_WAV_CODECS[audio_format]
            return _open_with_ffmpeg(source, reader, name, target_rate, block_seconds, format="wav", codec=codec)
        if _looks_like_mp3(head):
            return _open_with_ffmpeg(source, reader, name, target_rate, block_seconds, format="mp3", codec="mp3")
        raise UnreadableAudio(f"{name}: unsupported format (not a WAV or MP3 file; starts with {head[:8]!r})")
    except BaseException:
        reader.close()
        raise


def _open_source(source: AudioSource) -> tuple[str, IO[bytes]]:
    if isinstance(source, bytes):
        return "audio", io.BytesIO(source)
    path = Path(source)
    try:
        return str(path), path.open("rb")
    except FileNotFoundError as exc:
        raise UnreadableAudio(f"{path}: no such file") from exc
    except OSError as exc:
        raise UnreadableAudio(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _read_wav_header(reader: IO[bytes], name: str) -> tuple[int, bytes, int | None]:
    """Walk the chunks after `RIFF….WAVE` up to `data`: the format tag, the start of the `fmt ` chunk and the
    data's declared length (None when unknown, as in a WAV streamed from ffmpeg). The reader is left at the
    first sample."""
    fmt: bytes | None = None
    while True:
        header = reader.read(8)
        if len(header) < 8:
            break
        chunk_id, (chunk_size,) = header[:4], struct.unpack("<I", header[4:])
        if chunk_id == b"data":
            if fmt is None:
                break
            if len(fmt) < 16:
                raise UnreadableAudio(f"{name}: corrupt WAV (its 'fmt ' chunk is {len(fmt)} bytes, not 16)")
            (audio_format,) = struct.unpack_from("<H", fmt)
            return int(audio_format), fmt, None if chunk_size == 0xFFFFFFFF else chunk_size
        padded = chunk_size + (chunk_size & 1)
        if chunk_id == b"fmt " and fmt is None:
            if chunk_size < 16:
                break
            fmt = reader.read(min(chunk_size, _FMT_BYTES_READ))
            if len(fmt) < 2:
                break
            padded -= len(fmt)
        if not _skip(reader, padded):
            break
    if fmt is not None and len(fmt) >= 16:
        (audio_format,) = struct.unpack_from("<H", fmt)
        _check_encoding(int(audio_format), name)
        raise UnreadableAudio(f"{name}: corrupt WAV (no 'data' chunk: it holds no audio)")
    raise UnreadableAudio(f"{name}: corrupt WAV (no valid 'fmt ' chunk before the audio data)")


def _check_encoding(audio_format: int, name: str) -> None:
    if audio_format not in (WAVE_FORMAT_PCM, WAVE_FORMAT_EXTENSIBLE, *FFMPEG_WAV_CODECS):
        raise UnreadableAudio(f"{name}: unsupported WAV encoding 0x{audio_format:04X} (PCM, μ-law or A-law only)")


def _skip(reader: IO[bytes], count: int) -> bool:
    """Move past `count` bytes; False if the stream ends first."""
    if reader.seekable():
        position = reader.tell()
        end = reader.seek(0, io.SEEK_END)
        reader.seek(min(position + count, end))
        return position + count <= end
    while count > 0:
        skipped = reader.read(min(count, 1 << 16))
        if not skipped:
            return False
        count -= len(skipped)
    return True


def _pcm_format(fmt: bytes, name: str) -> _WavFormat:
    channels, sample_rate = struct.unpack_from("<HI", fmt, 2)
    (bits,) = struct.unpack_from("<H", fmt, 14)
    wav = _WavFormat(channels, sample_rate, bits // 8)
    if wav.sample_rate <= 0 or wav.channels <= 0 or wav.sample_width not in (1, 2, 3, 4):
        raise UnreadableAudio(
            f"{name}: corrupt WAV header ({wav.channels} channels, {wav.sample_rate} Hz, {wav.sample_width * 8}-bit)"
        )
    if wav.channels > len(DUAL_CHANNEL_LABELS):
        raise UnreadableAudio(f"{name}: unsupported: {wav.channels} channels (expected mono or dual-channel)")
    return wav


def _looks_like_mp3(data: bytes) -> bool:
    # An ID3 tag, or an MPEG audio frame sync (11 set bits).
    return data[:3] == b"ID3" or (len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


class _FfmpegDecoder:
    """ffmpeg decoding a recording to a 16-bit WAV on its stdout (fed the bytes on stdin, or given the path).
    Its stderr goes to a temporary file: a pipe left unread could fill and stall it."""

    def __init__(self, command: list[str], data: bytes | None, *, name: str, format: str) -> None:
        self.name = name
        self.format = format
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - it lives as long as ffmpeg; close() closes it
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._feeder: threading.Thread | None = None
        if data is not None:
            self._feeder = threading.Thread(target=self._feed, args=(data,), name="ffmpeg-stdin", daemon=True)
            self._feeder.start()

    def _feed(self, data: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            stdin.close()
        except OSError:
            pass  # ffmpeg stopped reading (a broken pipe); its exit status says why

    @property
    def stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    def failure(self) -> UnreadableAudio | None:
        """Once its output has ended: what went wrong, if ffmpeg failed."""
        if self.process.wait() == 0:
            return None
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", errors="replace").strip().splitlines()
        detail = lines[-1] if lines else "ffmpeg could not decode it"
        return UnreadableAudio(f"{self.name}: corrupt {self.format.upper()} ({detail})")

    def check_finished(self, name: str) -> None:
        error = self.failure()
        if error is not None:
            raise error

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # the caller stopped early
        self.process.wait()
        if self._feeder is not None:
            self._feeder.join()
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        self.stdout.close()
        self._stderr.close()


def _open_with_ffmpeg(
    source: AudioSource,
    reader: IO[bytes],
    name: str,
    target_rate: int,
    block_seconds: float,
    *,
    format: str,
    codec: str,
) -> AudioStream:
    if shutil.which(AudioSegment.converter) is None:
        raise UnreadableAudio(
            f"{name}: decoding {format.upper()} ({codec}) needs ffmpeg, which is not installed (apt-get install ffmpeg)"
        )
    if isinstance(source, bytes):
        # Made seekable by ffmpeg's cache (a temporary file), so an MP3 decodes exactly as from a file.
        data: bytes | None = source
        given = ["-read_ahead_limit", "-1", "-i", "cache:pipe:0"]
    else:
        data, given = None, ["-i", "file:" + os.fspath(source)]  # file: so no name reads as a protocol
    reader.close()
    # Forcing the input codec also stops ffmpeg guessing; its WAV output is 16-bit PCM at the source's rate.
    command = [
        AudioSegment.converter,
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        format,
        "-acodec",
        codec,
        *given,
        "-vn",
        "-f",
        "wav",
        "-acodec",
        "pcm_s16le",
        "pipe:1",
    ]
    decoder = _FfmpegDecoder(command, data, name=name, format=format)
    try:
        head = decoder.stdout.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise decoder.failure() or UnreadableAudio(f"{name}: corrupt {format.upper()} (ffmpeg gave no audio)")
        _, fmt, _ = _read_wav_header(decoder.stdout, name)
        wav = _pcm_format(fmt, name)
    except BaseException:
        decoder.close()
        raise
    # ffmpeg cannot know the length when writing to a pipe: read to the end.
    return AudioStream(name, decoder.stdout, None, wav, target_rate, block_seconds=block_seconds, decoder=decoder)
