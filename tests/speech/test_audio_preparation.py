"""Decoding recordings into mono 16-bit channels at the model's rate."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import struct
import wave
from pathlib import Path

import pytest

from ivr.speech.audio import PreparedChannel, UnreadableAudio, prepare_audio

requires_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg): MP3 and μ-law need it"
)

FIXTURE_SECONDS = 26472 / 8000  # the espeak phrase in every fixture


def wav_bytes(frames: bytes = b"", *, channels: int = 1, rate: int = 8000, width: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def samples(channel: PreparedChannel) -> tuple[int, ...]:
    return struct.unpack(f"<{channel.frame_count}h", channel.pcm)


def test_twilio_wav_is_resampled_to_the_target_rate(audio_dir: Path) -> None:
    [channel] = prepare_audio(audio_dir / "ko_8k.wav", 16000)
    assert channel.label == "mono"
    assert channel.sample_rate == 16000
    assert channel.duration == pytest.approx(FIXTURE_SECONDS, abs=0.01)
    assert len(channel.pcm) == pytest.approx(FIXTURE_SECONDS * 16000 * 2, abs=8)
    assert max(abs(value) for value in samples(channel)) > 1000  # speech, not silence


def test_bytes_and_paths_give_the_same_audio(audio_dir: Path) -> None:
    path = audio_dir / "ko_8k.wav"
    assert prepare_audio(path.read_bytes(), 16000) == prepare_audio(path, 16000)
    assert prepare_audio(str(path), 16000) == prepare_audio(path, 16000)


def test_the_original_file_is_not_modified(audio_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "recording.wav"
    shutil.copyfile(audio_dir / "ko_dual_8k.wav", copy)
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    prepare_audio(copy, 16000)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["recording.wav"]


def test_same_rate_keeps_the_samples() -> None:
    frames = struct.pack("<4h", 0, 1000, -1000, 32767)
    [channel] = prepare_audio(wav_bytes(frames), 8000)
    assert samples(channel) == (0, 1000, -1000, 32767)


def test_8_bit_pcm_becomes_16_bit() -> None:
    [channel] = prepare_audio(wav_bytes(bytes([128, 255, 0]), width=1), 8000)
    assert channel.frame_count == 3
    assert samples(channel)[0] == 0
    assert samples(channel)[1] > 30000
    assert samples(channel)[2] < -30000


def test_dual_channel_recording_is_split_into_caller_and_staff(audio_dir: Path) -> None:
    caller, staff = prepare_audio(audio_dir / "ko_dual_8k.wav", 16000)
    assert (caller.label, staff.label) == ("caller", "staff")
    assert caller.duration == staff.duration == pytest.approx(FIXTURE_SECONDS, abs=0.01)
    assert caller.pcm != staff.pcm
    [mono] = prepare_audio(audio_dir / "ko_8k.wav", 16000)
    assert caller.pcm == mono.pcm  # the caller's channel is exactly the caller's speech


def test_dual_channel_keeps_channels_apart() -> None:
    frames = struct.pack("<6h", 100, -5, 200, -5, 300, -5)  # left 100,200,300; right -5
    caller, staff = prepare_audio(wav_bytes(frames, channels=2), 8000)
    assert samples(caller) == (100, 200, 300)
    assert samples(staff) == (-5, -5, -5)


@requires_ffmpeg
def test_mulaw_wav_decodes_to_16_bit(audio_dir: Path) -> None:
    [ulaw] = prepare_audio(audio_dir / "ko_8k_ulaw.wav", 16000)
    [pcm] = prepare_audio(audio_dir / "ko_8k.wav", 16000)
    assert ulaw.duration == pytest.approx(pcm.duration, abs=0.01)
    # μ-law keeps about 14 bits: decoded to 16-bit it must be close to the PCM original, not 8-bit coarse.
    difference = [abs(a - b) for a, b in zip(samples(ulaw), samples(pcm), strict=False)]
    assert sum(difference) / len(difference) < 200
    assert len(set(samples(ulaw))) > 256


@requires_ffmpeg
def test_mp3_decodes(audio_dir: Path) -> None:
    [channel] = prepare_audio(audio_dir / "ko_8k.mp3", 16000)
    assert channel.sample_rate == 16000
    assert channel.duration == pytest.approx(FIXTURE_SECONDS, abs=0.1)
    assert max(abs(value) for value in samples(channel)) > 1000


def test_wav_without_samples_is_empty_audio_not_an_error() -> None:
    [channel] = prepare_audio(wav_bytes(), 16000)
    assert channel.pcm == b""
    assert channel.duration == 0


def test_truncated_wav_keeps_what_was_recorded(audio_dir: Path) -> None:
    data = (audio_dir / "ko_8k.wav").read_bytes()
    [channel] = prepare_audio(data[: len(data) // 2 + 1], 16000)  # cut mid-sample, as an interrupted upload
    assert channel.duration == pytest.approx(FIXTURE_SECONDS / 2, abs=0.02)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty (0 bytes)"),
        (b"hello, this is not audio", "unsupported format"),
        (b"OggS" + bytes(60), "unsupported format"),
        (b"RIFF\x00\x00\x00\x00WAVE" + bytes(40), "corrupt WAV"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00", "corrupt WAV"),
    ],
)
def test_unreadable_audio_says_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(UnreadableAudio, match=re.escape(message)):
        prepare_audio(data, 16000)


def test_unsupported_wav_encoding_is_named() -> None:
    data = bytearray(wav_bytes(bytes(8)))
    data[20:22] = struct.pack("<H", 0x0011)  # IMA ADPCM
    with pytest.raises(UnreadableAudio, match="unsupported WAV encoding 0x0011"):
        prepare_audio(bytes(data), 16000)


def test_zero_rate_header_is_corrupt() -> None:
    data = bytearray(wav_bytes(bytes(8)))
    data[24:28] = struct.pack("<I", 0)
    with pytest.raises(UnreadableAudio, match="corrupt WAV"):
        prepare_audio(bytes(data), 16000)


def test_more_than_two_channels_is_unsupported() -> None:
    with pytest.raises(UnreadableAudio, match="3 channels"):
        prepare_audio(wav_bytes(bytes(12), channels=3), 16000)


@requires_ffmpeg
def test_corrupt_mp3_is_named() -> None:
    with pytest.raises(UnreadableAudio, match="corrupt MP3"):
        prepare_audio(b"ID3" + bytes(500), 16000)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UnreadableAudio, match="no such file"):
        prepare_audio(tmp_path / "missing.wav", 16000)


def test_mp3_without_ffmpeg_says_to_install_it(audio_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ivr.speech.audio.shutil.which", lambda name: None)
    with pytest.raises(UnreadableAudio, match=r"needs ffmpeg.*apt-get install ffmpeg"):
        prepare_audio(audio_dir / "ko_8k.mp3", 16000)


def test_target_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="target_rate"):
        prepare_audio(wav_bytes(), 0)
