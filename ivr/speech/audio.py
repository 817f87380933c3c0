"""Turn a recording (Twilio WAV, μ-law WAV or MP3) into mono 16-bit PCM channels at the model's rate."""

from __future__ import annotations

import io
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from pydub import AudioSegment
from pydub.exceptions import CouldntDecodeError

SAMPLE_WIDTH = 2  # bytes: 16-bit signed little-endian, what Vosk expects

# Twilio's dual-channel recordings put the caller's leg first and the dialled (staff) leg second.
DUAL_CHANNEL_LABELS = ("caller", "staff")
MONO_LABEL = "mono"

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# WAV encodings ffmpeg decodes for us; pydub reads plain PCM itself.
FFMPEG_WAV_CODECS = {WAVE_FORMAT_ALAW: "pcm_alaw", WAVE_FORMAT_MULAW: "pcm_mulaw"}

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
    if target_rate <= 0:
        raise ValueError(f"target_rate must be positive, not {target_rate}")
    data, name = _read_source(source)
    segment = _decode(data, name)
    if segment.channels > len(DUAL_CHANNEL_LABELS):
        raise UnreadableAudio(f"{name}: unsupported: {segment.channels} channels (expected mono or dual-channel)")
    segment = segment.set_sample_width(SAMPLE_WIDTH).set_frame_rate(target_rate)
    if segment.channels == 1:
        return [PreparedChannel(MONO_LABEL, segment.raw_data, target_rate)]
    return [
        PreparedChannel(label, channel.raw_data, target_rate)
        for label, channel in zip(DUAL_CHANNEL_LABELS, segment.split_to_mono(), strict=True)
    ]


def _read_source(source: AudioSource) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, "audio"
    path = Path(source)
    try:
        return path.read_bytes(), str(path)
    except FileNotFoundError as exc:
        raise UnreadableAudio(f"{path}: no such file") from exc
    except OSError as exc:
        raise UnreadableAudio(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _decode(data: bytes, name: str) -> AudioSegment:
    if not data:
        raise UnreadableAudio(f"{name}: empty (0 bytes)")
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _decode_wav(data, name)
    if _looks_like_mp3(data):
        return _decode_with_ffmpeg(data, name, format="mp3", codec="mp3")
    raise UnreadableAudio(f"{name}: unsupported format (not a WAV or MP3 file; starts with {data[:8]!r})")


def _decode_wav(data: bytes, name: str) -> AudioSegment:
    audio_format = _wav_audio_format(data, name)
    if audio_format in (WAVE_FORMAT_PCM, WAVE_FORMAT_EXTENSIBLE):
        try:
            segment = AudioSegment(data=data)
        except (CouldntDecodeError, struct.error, ValueError) as exc:
            raise UnreadableAudio(f"{name}: corrupt WAV ({exc})") from exc
        return _whole_frames(segment, name)
    codec = FFMPEG_WAV_CODECS.get(audio_format)
    if codec is None:
        raise UnreadableAudio(f"{name}: unsupported WAV encoding 0x{audio_format:04X} (PCM, μ-law or A-law only)")
    return _decode_with_ffmpeg(data, name, format="wav", codec=codec)


def _wav_audio_format(data: bytes, name: str) -> int:
    """The format tag of the WAV `fmt ` chunk."""
    position = 12
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        (chunk_size,) = struct.unpack_from("<I", data, position + 4)
        if chunk_id == b"fmt ":
            if chunk_size < 16 or position + 10 > len(data):
                break
            (audio_format,) = struct.unpack_from("<H", data, position + 8)
            return int(audio_format)
        if chunk_id == b"data":
            break
        position += 8 + chunk_size + (chunk_size & 1)
    raise UnreadableAudio(f"{name}: corrupt WAV (no valid 'fmt ' chunk before the audio data)")


def _whole_frames(segment: AudioSegment, name: str) -> AudioSegment:
    if segment.frame_rate <= 0 or segment.channels <= 0 or segment.sample_width not in (1, 2, 3, 4):
        raise UnreadableAudio(
            f"{name}: corrupt WAV header ({segment.channels} channels, {segment.frame_rate} Hz, "
            f"{segment.sample_width * 8}-bit)"
        )
    partial = len(segment.raw_data) % segment.frame_width
    if partial:
        # A recording cut off mid-sample (an interrupted upload) still holds everything before the cut.
        return segment._spawn(segment.raw_data[:-partial])
    return segment


def _looks_like_mp3(data: bytes) -> bool:
    # An ID3 tag, or an MPEG audio frame sync (11 set bits).
    return data[:3] == b"ID3" or (len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def _decode_with_ffmpeg(data: bytes, name: str, *, format: str, codec: str) -> AudioSegment:
    if shutil.which(AudioSegment.converter) is None:
        raise UnreadableAudio(
            f"{name}: decoding {format.upper()} ({codec}) needs ffmpeg, which is not installed (apt-get install ffmpeg)"
        )
    try:
        # Forcing the input codec also stops pydub choosing 8-bit output for μ-law; ffmpeg writes 16-bit.
        return AudioSegment.from_file(io.BytesIO(data), format=format, codec=codec)
    except CouldntDecodeError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "ffmpeg could not decode it"
        raise UnreadableAudio(f"{name}: corrupt {format.upper()} ({detail})") from exc
