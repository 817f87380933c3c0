"""Speech models on disk: download, verify and unpack them atomically; list what is installed."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

import requests

DEFAULT_MODEL_NAME = "vosk-model-small-cn-0.22"
CHUNK_SIZE = 1 << 16
DOWNLOAD_TIMEOUT = 30.0  # seconds to connect, and between bytes once connected

# Progress callbacks receive (bytes done, total bytes or None when unknown).
ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class KnownModel:
    """A model we know where to fetch and how to verify."""

    name: str
    url: str
    size: int
    sha256: str


KNOWN_MODELS: dict[str, KnownModel] = {
    model.name: model
    for model in (
        KnownModel(
            name="vosk-model-small-cn-0.22",
            url="https://alphacephei.com/vosk/models/vosk-model-small-cn-0.22.zip",
            size=43_898_754,
            sha256="3af8b0e7e0f835ae9d414ce5df580237a3cfb08d586c9fbbb0f7ff29ad5b14ba",
        ),
    )
}


class ModelStoreError(Exception):
    """A model could not be installed; the message says why and what to do."""


class ModelFetchError(ModelStoreError):
    """The download failed (host unreachable, HTTP error, connection cut)."""


class ModelVerificationError(ModelStoreError):
    """The downloaded or given archive is not the expected file (size or SHA-256 differs)."""


class ModelArchiveError(ModelStoreError):
    """The archive cannot be unpacked into a model (not a zip, unsafe paths, no model inside)."""


def model_layout_problems(path: Path) -> list[str]:
    """What is missing for `path` to be a Vosk model folder; empty when it looks like one."""
    if not path.is_dir():
        return [f"{path} is not a folder"]
    problems = []
    if not (path / "am" / "final.mdl").is_file():
        problems.append("am/final.mdl is missing")
    if not (path / "conf" / "mfcc.conf").is_file():
        problems.append("conf/mfcc.conf is missing")
    graph = path / "graph"
    has_static_graph = (graph / "HCLG.fst").is_file()
    has_lookahead_graph = (graph / "HCLr.fst").is_file() and (graph / "Gr.fst").is_file()
    if not (has_static_graph or has_lookahead_graph):
        problems.append("graph/ has neither HCLG.fst nor HCLr.fst + Gr.fst")
    return problems


def installed_models(models_dir: Path) -> list[Path]:
    """Model folders directly under `models_dir`, by name (temporary and hidden entries are skipped)."""
    if not models_dir.is_dir():
        return []
    return sorted(
        entry for entry in models_dir.iterdir() if not entry.name.startswith(".") and not model_layout_problems(entry)
    )


def manual_install_hint(name: str, url: str | None) -> str:
    """How to install a model by hand when this machine cannot download it."""
    known = KNOWN_MODELS.get(name)
    where = url or (known.url if known else f"{name}.zip")
    facts = f" ({known.size:,} bytes, SHA-256 {known.sha256})" if known else ""
    return (
        f"To install it by hand: download {where}{facts} on a machine with internet access, copy the zip "
        f"here, then run `ivr models install {name}.zip` (it verifies and unpacks it the same way)."
    )


def fetch_model(
    name: str,
    models_dir: Path,
    url: str | None = None,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    progress: ProgressCallback | None = None,
    *,
    force: bool = False,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """Download model `name` (a zip) into `models_dir`, verify its size and SHA-256, and unpack it to
    `models_dir/name` atomically. Known models need only a name; others need url and expected_sha256.
    Returns the model folder; an already installed model is kept unless `force`."""
    known = KNOWN_MODELS.get(name)
    url = url or (known.url if known else None)
    expected_sha256 = expected_sha256 or (known.sha256 if known else None)
    if expected_size is None and known is not None:
        expected_size = known.size
    if url is None or expected_sha256 is None:
        raise ModelStoreError(
            f"unknown model {name!r}: give its URL and SHA-256 (known models: {', '.join(KNOWN_MODELS)})"
        )
    _check_name(name)
    target = models_dir / name
    if not force and not model_layout_problems(target):
        return target

    models_dir.mkdir(parents=True, exist_ok=True)
    # The temporary file lives beside the models so the final rename stays on one file system.
    fd, temp_name = tempfile.mkstemp(prefix=f".fetch-{name}-", suffix=".zip.part", dir=models_dir)
    archive = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _download(url, out, name, progress, timeout)
        try:
            _verify(archive, expected_size, expected_sha256, what=f"the download of {name} from {url}")
        except ModelVerificationError as exc:
            raise ModelVerificationError(f"{exc}; the file was deleted. {manual_install_hint(name, url)}") from exc
        return _unpack(archive, models_dir, name, force=force)
    finally:
        archive.unlink(missing_ok=True)


def install_model_archive(
    archive: Path,
    models_dir: Path,
    name: str | None = None,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    *,
    force: bool = False,
) -> Path:
    """Verify a model zip fetched by hand and unpack it to `models_dir/name` atomically. The name defaults to
    the file name without `.zip`; a known model is checked against its size and SHA-256, any other needs
    `expected_sha256`. The archive itself is left as it is."""
    name = name or archive.name.removesuffix(".zip")
    _check_name(name)
    known = KNOWN_MODELS.get(name)
    expected_sha256 = expected_sha256 or (known.sha256 if known else None)
    if expected_size is None and known is not None:
        expected_size = known.size
    if expected_sha256 is None:
        raise ModelStoreError(
            f"{name!r} is not a known model, so there is nothing to verify {archive} against: "
            "give the SHA-256 published with it (--sha256)"
        )
    if not archive.is_file():
        raise ModelStoreError(f"{archive}: no such file")
    target = models_dir / name
    if not force and not model_layout_problems(target):
        raise ModelStoreError(f"{target} is already installed (use --force to replace it)")
    _verify(archive, expected_size, expected_sha256, what=str(archive))
    models_dir.mkdir(parents=True, exist_ok=True)
    return _unpack(archive, models_dir, name, force=force)


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\\" in name or os.sep in name:
        raise ModelStoreError(f"{name!r} is not a model name (a folder name under models/, e.g. {DEFAULT_MODEL_NAME})")


def _download(url: str, out: BinaryIO, name: str, progress: ProgressCallback | None, timeout: float) -> None:
    host = urlsplit(url).hostname or url
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise ModelFetchError(
                    f"{host} answered HTTP {response.status_code} for {url}. {manual_install_hint(name, url)}"
                )
            total_header = response.headers.get("Content-Length")
            total = int(total_header) if total_header and total_header.isdigit() else None
            done = 0
            if progress:
                progress(done, total)
            for chunk in response.iter_content(CHUNK_SIZE):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ModelFetchError(
            f"cannot download {name}: {host} is unreachable from this machine ({type(exc).__name__}). "
            f"{manual_install_hint(name, url)}"
        ) from exc
    except requests.RequestException as exc:
        # Includes a connection cut mid-body (ChunkedEncodingError): the partial file is deleted by the caller.
        raise ModelFetchError(
            f"the download of {name} from {host} broke off ({exc}); the partial file was deleted. "
            f"Try again. {manual_install_hint(name, url)}"
        ) from exc


def _verify(archive: Path, expected_size: int | None, expected_sha256: str, what: str) -> None:
    size = archive.stat().st_size
    if expected_size is not None and size != expected_size:
        raise ModelVerificationError(
            f"{what} is {size:,} bytes, expected {expected_size:,}: it is incomplete or not the right file"
        )
    digest = hashlib.sha256()
    with archive.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(block)
    if digest.hexdigest() != expected_sha256.lower():
        raise ModelVerificationError(
            f"{what} has SHA-256 {digest.hexdigest()}, expected {expected_sha256.lower()}: it is corrupt or "
            "not the right file"
        )


def _unpack(archive: Path, models_dir: Path, name: str, *, force: bool) -> Path:
    """Extract into a hidden temporary folder, then rename the model folder into place."""
    target = models_dir / name
    staging = Path(tempfile.mkdtemp(prefix=f".install-{name}-", dir=models_dir))
    try:
        try:
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.namelist():
                    parts = PurePosixPath(member.replace("\\", "/")).parts
                    if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                        raise ModelArchiveError(f"{archive.name}: unsafe path {member!r} in the archive")
                bundle.extractall(staging)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise ModelArchiveError(f"{archive.name} is not a valid zip archive ({exc})") from exc
        root = _model_root(staging)
        if root is None:
            problems = model_layout_problems(staging)
            raise ModelArchiveError(
                f"{archive.name} does not contain a Vosk model ({'; '.join(problems)}); nothing was installed"
            )
        if target.exists():
            if not force:
                raise ModelStoreError(f"{target} already exists (use --force to replace it)")
            # Move the old model aside inside staging: it is removed with staging, and `target` is never
            # missing longer than between two renames.
            old = staging / ".previous"
            target.rename(old)
        root.rename(target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _model_root(staging: Path) -> Path | None:
    """The model folder inside an extracted archive: the archive root, or its single top-level folder."""
    if not model_layout_problems(staging):
        # The archive has the model files at its root: move them into a folder of their own.
        inner = staging / ".model"
        inner.mkdir()
        for entry in list(staging.iterdir()):
            if entry != inner:
                entry.rename(inner / entry.name)
        return inner
    entries = [entry for entry in staging.iterdir() if entry.name != "__MACOSX"]
    if len(entries) == 1 and not model_layout_problems(entries[0]):
        return entries[0]
    return None
