"""Downloading, verifying and unpacking speech models, against a local HTTP server."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from ivr.speech.model_store import (
    KNOWN_MODELS,
    ModelArchiveError,
    ModelFetchError,
    ModelStoreError,
    ModelVerificationError,
    fetch_model,
    install_model_archive,
    installed_models,
    model_layout_problems,
)

from .local_http import ModelServer

NAME = "vosk-model-test-0.1"
MODEL_FILES = {
    "am/final.mdl": b"acoustic model",
    "conf/mfcc.conf": b"--sample-frequency=8000\n",
    "conf/model.conf": b"--beam=10.0\n",
    "graph/HCLr.fst": b"lookahead graph",
    "graph/Gr.fst": b"grammar",
    "README": b"a tiny stand-in model",
}


def build_model_zip(top: str | None = NAME, files: dict[str, bytes] = MODEL_FILES) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, content in files.items():
            bundle.writestr(f"{top}/{name}" if top else name, content)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(models_dir: Path) -> list[str]:
    """Temporary files or folders a fetch left behind."""
    return sorted(entry.name for entry in models_dir.iterdir() if entry.name.startswith("."))


def test_fetch_downloads_verifies_and_unpacks(model_server: ModelServer, tmp_path: Path) -> None:
    archive = build_model_zip()
    url = model_server.serve("/m.zip", archive)
    seen: list[tuple[int, int | None]] = []
    path = fetch_model(
        NAME, tmp_path, url=url, expected_size=len(archive), expected_sha256=sha256(archive),
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert path == tmp_path / NAME
    assert (path / "am" / "final.mdl").read_bytes() == b"acoustic model"
    assert model_layout_problems(path) == []
    assert installed_models(tmp_path) == [path]
    assert leftovers(tmp_path) == []
    assert seen[0] == (0, len(archive))
    assert seen[-1] == (len(archive), len(archive))


def test_zip_with_model_files_at_its_root(model_server: ModelServer, tmp_path: Path) -> None:
    archive = build_model_zip(top=None)
    url = model_server.serve("/flat.zip", archive)
    path = fetch_model(NAME, tmp_path, url=url, expected_sha256=sha256(archive))
    assert (path / "graph" / "Gr.fst").read_bytes() == b"grammar"
    assert leftovers(tmp_path) == []


def test_an_installed_model_is_not_downloaded_again(model_server: ModelServer, tmp_path: Path) -> None:
    archive = build_model_zip()
    url = model_server.serve("/m.zip", archive)
    fetch_model(NAME, tmp_path, url=url, expected_sha256=sha256(archive))
    fetch_model(NAME, tmp_path, url=url, expected_sha256=sha256(archive))
    assert model_server.requests == ["/m.zip"]


def test_force_replaces_the_installed_model(model_server: ModelServer, tmp_path: Path) -> None:
    old = build_model_zip()
    new = build_model_zip(files=MODEL_FILES | {"README": b"version two"})
    fetch_model(NAME, tmp_path, url=model_server.serve("/old.zip", old), expected_sha256=sha256(old))
    path = fetch_model(NAME, tmp_path, url=model_server.serve("/new.zip", new), expected_sha256=sha256(new),
                       force=True)  # fmt: skip
    assert (path / "README").read_bytes() == b"version two"
    assert leftovers(tmp_path) == []


def test_corrupt_download_is_refused_and_deleted(model_server: ModelServer, tmp_path: Path) -> None:
    archive = build_model_zip()
    corrupt = archive[:100] + bytes([archive[100] ^ 0xFF]) + archive[101:]
    url = model_server.serve("/m.zip", corrupt)
    with pytest.raises(ModelVerificationError) as caught:
        fetch_model(NAME, tmp_path, url=url, expected_size=len(archive), expected_sha256=sha256(archive))
    message = str(caught.value)
    assert f"expected {sha256(archive)}" in message
    assert "corrupt" in message
    assert "deleted" in message
    assert list(tmp_path.iterdir()) == []


def test_truncated_download_is_refused_by_size(model_server: ModelServer, tmp_path: Path) -> None:
    archive = build_model_zip()
    url = model_server.serve("/m.zip", archive[: len(archive) // 2])
    with pytest.raises(ModelVerificationError, match=f"expected {len(archive):,}: it is incomplete"):
        fetch_model(NAME, tmp_path, url=url, expected_size=len(archive), expected_sha256=sha256(archive))
    assert list(tmp_path.iterdir()) == []


def test_connection_cut_mid_download(model_server: ModelServer, tmp_path: Path) -> None:
    archive = build_model_zip()
    url = model_server.serve("/m.zip", archive[:200], declared_length=len(archive))
    with pytest.raises(ModelFetchError, match=r"broke off.*partial file was deleted"):
        fetch_model(NAME, tmp_path, url=url, expected_size=len(archive), expected_sha256=sha256(archive))
    assert list(tmp_path.iterdir()) == []


def test_interrupted_fetch_leaves_no_half_model(model_server: ModelServer, tmp_path: Path) -> None:
    archive = build_model_zip()
    url = model_server.serve("/m.zip", archive)

    def interrupt(done: int, total: int | None) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_model(NAME, tmp_path, url=url, expected_sha256=sha256(archive), progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_says_how_to_install_by_hand(tmp_path: Path) -> None:
    known = KNOWN_MODELS["vosk-model-small-cn-0.22"]
    with pytest.raises(ModelFetchError) as caught:
        # Port 1 on loopback: nothing listens there, so the connection is refused at once.
        fetch_model(known.name, tmp_path, url="http://127.0.0.1:1/vosk-model-small-cn-0.22.zip", timeout=5)
    message = str(caught.value)
    assert "127.0.0.1 is unreachable" in message
    assert "ivr models install vosk-model-small-cn-0.22.zip" in message
    assert known.sha256 in message
    assert "43,898,754 bytes" in message
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_fetch_error(model_server: ModelServer, tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match="HTTP 404"):
        fetch_model(NAME, tmp_path, url=model_server.base_url + "/missing.zip", expected_sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_archive_without_a_model_is_refused(model_server: ModelServer, tmp_path: Path) -> None:
    archive = build_model_zip(files={"notes.txt": b"not a model"})
    url = model_server.serve("/m.zip", archive)
    with pytest.raises(ModelArchiveError, match="does not contain a Vosk model"):
        fetch_model(NAME, tmp_path, url=url, expected_sha256=sha256(archive))
    assert list(tmp_path.iterdir()) == []


def test_archive_with_unsafe_paths_is_refused(model_server: ModelServer, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    archive = build_model_zip(files=MODEL_FILES | {"../../escape.txt": b"outside"})
    url = model_server.serve("/m.zip", archive)
    with pytest.raises(ModelArchiveError, match="unsafe path"):
        fetch_model(NAME, models_dir, url=url, expected_sha256=sha256(archive))
    assert list(models_dir.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_not_a_zip_is_refused(model_server: ModelServer, tmp_path: Path) -> None:
    body = b"<html>captive portal</html>"
    url = model_server.serve("/m.zip", body)
    with pytest.raises(ModelArchiveError, match="not a valid zip"):
        fetch_model(NAME, tmp_path, url=url, expected_sha256=sha256(body))
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_needs_url_and_checksum(tmp_path: Path) -> None:
    with pytest.raises(ModelStoreError, match="unknown model 'no-such-model'"):
        fetch_model("no-such-model", tmp_path)


@pytest.mark.parametrize("name", ["../evil", ".hidden", "a/b", ""])
def test_model_names_cannot_escape_the_models_folder(name: str, tmp_path: Path) -> None:
    with pytest.raises(ModelStoreError, match="is not a model name"):
        fetch_model(name, tmp_path, url="http://127.0.0.1:1/x.zip", expected_sha256="0" * 64)


def test_the_chinese_model_is_known() -> None:
    known = KNOWN_MODELS["vosk-model-small-cn-0.22"]
    assert known.url == "https://alphacephei.com/vosk/models/vosk-model-small-cn-0.22.zip"
    assert known.size == 43_898_754
    assert known.sha256 == "3af8b0e7e0f835ae9d414ce5df580237a3cfb08d586c9fbbb0f7ff29ad5b14ba"


def test_install_by_hand_verifies_and_unpacks(tmp_path: Path) -> None:
    archive = build_model_zip()
    zip_path = tmp_path / f"{NAME}.zip"
    zip_path.write_bytes(archive)
    models_dir = tmp_path / "models"
    path = install_model_archive(zip_path, models_dir, expected_sha256=sha256(archive))
    assert path == models_dir / NAME
    assert model_layout_problems(path) == []
    assert zip_path.read_bytes() == archive  # the archive is left as it was
    assert leftovers(models_dir) == []


def test_install_of_a_known_model_checks_the_published_checksum(tmp_path: Path) -> None:
    zip_path = tmp_path / "vosk-model-small-cn-0.22.zip"
    zip_path.write_bytes(build_model_zip(top="vosk-model-small-cn-0.22"))
    models_dir = tmp_path / "models"
    with pytest.raises(ModelVerificationError, match="expected 43,898,754"):
        install_model_archive(zip_path, models_dir)
    assert not models_dir.exists() or list(models_dir.iterdir()) == []


def test_install_of_an_unknown_model_needs_a_checksum(tmp_path: Path) -> None:
    zip_path = tmp_path / "mystery.zip"
    zip_path.write_bytes(build_model_zip())
    with pytest.raises(ModelStoreError, match="give the SHA-256"):
        install_model_archive(zip_path, tmp_path / "models")


def test_install_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    archive = build_model_zip()
    zip_path = tmp_path / f"{NAME}.zip"
    zip_path.write_bytes(archive)
    models_dir = tmp_path / "models"
    install_model_archive(zip_path, models_dir, expected_sha256=sha256(archive))
    with pytest.raises(ModelStoreError, match="already installed"):
        install_model_archive(zip_path, models_dir, expected_sha256=sha256(archive))
    assert install_model_archive(zip_path, models_dir, expected_sha256=sha256(archive), force=True).is_dir()


def test_installed_models_skips_temporary_and_broken_folders(tmp_path: Path) -> None:
    archive = build_model_zip()
    zip_path = tmp_path / f"{NAME}.zip"
    zip_path.write_bytes(archive)
    models_dir = tmp_path / "models"
    install_model_archive(zip_path, models_dir, expected_sha256=sha256(archive))
    (models_dir / ".install-half").mkdir()
    (models_dir / "empty-model").mkdir()
    assert [path.name for path in installed_models(models_dir)] == [NAME]
    assert installed_models(tmp_path / "nowhere") == []
