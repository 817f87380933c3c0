"""`ivr models …` and `ivr transcribe` through Click's runner."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import main

from .local_http import ModelServer

MODEL_FILES = {
    "am/final.mdl": b"acoustic model",
    "conf/mfcc.conf": b"--use-energy=false\n",
    "graph/HCLG.fst": b"graph",
}


def model_zip(top: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, content in MODEL_FILES.items():
            bundle.writestr(f"{top}/{name}", content)
    return buffer.getvalue()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def repo_dotenv(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the commands look for `.env`: a temporary folder, so a developer's own `.env` cannot leak in."""
    folder = tmp_path_factory.mktemp("repo")
    monkeypatch.setattr("ivr.config.REPO_ROOT", folder)
    return folder / ".env"


def invoke(runner: CliRunner, *args: str, model: str | None = None, models_dir: Path | None = None) -> tuple[int, str]:
    env = {"IVR_VOSK_MODEL": model, "IVR_MODELS_DIR": str(models_dir) if models_dir else None}
    result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_install_then_list(runner: CliRunner, tmp_path: Path) -> None:
    archive = model_zip("vosk-model-test-0.1")
    zip_path = tmp_path / "vosk-model-test-0.1.zip"
    zip_path.write_bytes(archive)
    models_dir = tmp_path / "models"
    code, output = invoke(
        runner, "models", "install", str(zip_path), "--models-dir", str(models_dir),
        "--sha256", hashlib.sha256(archive).hexdigest(),
    )  # fmt: skip
    assert code == 0, output
    assert f"installed vosk-model-test-0.1: {models_dir / 'vosk-model-test-0.1'}" in output

    code, output = invoke(runner, "models", "list", "--models-dir", str(models_dir), model="vosk-model-test-0.1")
    assert code == 0
    assert "* vosk-model-test-0.1" in output
    assert f"configured: {models_dir / 'vosk-model-test-0.1'}" in output

    code, output = invoke(runner, "models", "list", "--models-dir", str(models_dir))
    assert "  vosk-model-test-0.1" in output
    assert "vosk-model-small-cn-0.22 (not installed: run `ivr models fetch`)" in output


def test_list_reads_the_configured_model_from_dotenv(runner: CliRunner, repo_dotenv: Path, tmp_path: Path) -> None:
    repo_dotenv.write_text("IVR_VOSK_MODEL=vosk-model-cn-0.22\n")
    code, output = invoke(runner, "models", "list", "--models-dir", str(tmp_path / "models"))
    assert code == 0
    assert f"configured: {tmp_path / 'models' / 'vosk-model-cn-0.22'} (not installed" in output
    code, output = invoke(runner, "models", "list", "--models-dir", str(tmp_path / "models"), model="/srv/model")
    assert "configured: /srv/model (not installed" in output


def test_models_folder_from_the_environment(runner: CliRunner, tmp_path: Path) -> None:
    archive = model_zip("vosk-model-test-0.1")
    zip_path = tmp_path / "vosk-model-test-0.1.zip"
    zip_path.write_bytes(archive)
    models_dir = tmp_path / "elsewhere"
    sha = hashlib.sha256(archive).hexdigest()
    code, output = invoke(runner, "models", "install", str(zip_path), "--sha256", sha, models_dir=models_dir)
    assert code == 0, output
    assert (models_dir / "vosk-model-test-0.1" / "am" / "final.mdl").is_file()
    code, output = invoke(runner, "models", "list", models_dir=models_dir, model="vosk-model-test-0.1")
    assert "* vosk-model-test-0.1" in output


def test_install_of_a_corrupt_known_model_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    zip_path = tmp_path / "vosk-model-small-cn-0.22.zip"
    zip_path.write_bytes(model_zip("vosk-model-small-cn-0.22"))
    code, output = invoke(runner, "models", "install", str(zip_path), "--models-dir", str(tmp_path / "models"))
    assert code == 1
    assert "expected 43,898,754" in output
    assert not (tmp_path / "models" / "vosk-model-small-cn-0.22").exists()


def test_fetch_downloads_with_a_progress_bar(runner: CliRunner, model_server: ModelServer, tmp_path: Path) -> None:
    archive = model_zip("vosk-model-test-0.1")
    url = model_server.serve("/vosk-model-test-0.1.zip", archive)
    code, output = invoke(
        runner, "models", "fetch", "vosk-model-test-0.1", "--models-dir", str(tmp_path), "--url", url,
        "--sha256", hashlib.sha256(archive).hexdigest(), "--size", str(len(archive)),
    )  # fmt: skip
    assert code == 0, output
    assert "downloading vosk-model-test-0.1" in output  # the bar's label (no bar drawn without a terminal)
    assert f"installed vosk-model-test-0.1: {tmp_path / 'vosk-model-test-0.1'}" in output
    assert (tmp_path / "vosk-model-test-0.1" / "am" / "final.mdl").read_bytes() == b"acoustic model"


def test_fetch_refuses_a_corrupt_download(runner: CliRunner, model_server: ModelServer, tmp_path: Path) -> None:
    archive = model_zip("vosk-model-test-0.1")
    url = model_server.serve("/m.zip", archive[:-1] + b"!")
    code, output = invoke(
        runner, "models", "fetch", "vosk-model-test-0.1", "--models-dir", str(tmp_path), "--url", url,
        "--sha256", hashlib.sha256(archive).hexdigest(),
    )  # fmt: skip
    assert code == 1
    assert "corrupt or not the right file; the file was deleted" in output
    assert list(tmp_path.iterdir()) == []


def test_fetch_from_an_unreachable_host_explains_the_manual_install(runner: CliRunner, tmp_path: Path) -> None:
    code, output = invoke(
        runner, "models", "fetch", "--models-dir", str(tmp_path), "--url", "http://127.0.0.1:1/model.zip"
    )
    assert code == 1
    assert "127.0.0.1 is unreachable" in output
    assert "ivr models install vosk-model-small-cn-0.22.zip" in output
    assert list(tmp_path.iterdir()) == []


def test_fetch_of_an_installed_model_does_nothing(runner: CliRunner, tmp_path: Path) -> None:
    for name, content in MODEL_FILES.items():
        path = tmp_path / "vosk-model-small-cn-0.22" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    code, output = invoke(runner, "models", "fetch", "--models-dir", str(tmp_path), "--url", "http://127.0.0.1:1/")
    assert code == 0
    assert "already installed" in output


def test_transcribe_without_a_model_says_how_to_install_it(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "vosk-model-small-cn-0.22"
    code, output = invoke(runner, "transcribe", "--model", str(missing), str(tmp_path / "call.wav"))
    assert code == 1
    assert f"looked for {missing}" in output
    assert "ivr models fetch vosk-model-small-cn-0.22" in output


@pytest.mark.slow
def test_transcribe_prints_text_per_channel(
    runner: CliRunner, korean_model_path: Path, audio_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    code, output = invoke(
        runner, "transcribe", "--model", str(korean_model_path),
        str(audio_dir / "ko_8k.wav"), str(audio_dir / "ko_dual_8k.wav"), str(broken),
    )  # fmt: skip
    assert code == 1
    lines = output.splitlines()
    assert any(line.startswith(f"{audio_dir / 'ko_8k.wav'} [mono, 3.3 s]: ") for line in lines)
    assert any(line.startswith(f"{audio_dir / 'ko_dual_8k.wav'} [caller, 3.3 s]: ") for line in lines)
    assert any(line.startswith(f"{audio_dir / 'ko_dual_8k.wav'} [staff, 3.3 s]: ") for line in lines)
    assert f"{broken}: error: {broken}: corrupt WAV" in output
    assert "1 of 3 files could not be read" in output


@pytest.mark.slow
def test_transcribe_json_has_timed_words(runner: CliRunner, korean_model_path: Path, audio_dir: Path) -> None:
    result = runner.invoke(
        main, ["transcribe", "--json", "--model", str(korean_model_path), str(audio_dir / "ko_8k_ulaw.wav")]
    )
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)
    assert entry["file"] == str(audio_dir / "ko_8k_ulaw.wav")
    assert entry["error"] is None
    [channel] = entry["channels"]
    assert channel["channel"] == "mono"
    assert channel["text"]
    assert channel["urgent"] is False
    words = channel["words"]
    assert words
    assert set(words[0]) == {"word", "start", "end", "conf", "low_confidence"}
    assert all(0 <= word["start"] <= word["end"] <= channel["duration"] + 0.05 for word in words)
