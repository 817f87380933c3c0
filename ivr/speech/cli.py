"""`ivr models …` (fetch, install, list speech models) and `ivr transcribe FILE…`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ivr.config import read_environment, speech_model_location

# Heavy modules (vosk, cn2an) are imported inside the commands so `ivr --help` stays fast.

models_dir_option = click.option(
    "--models-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder holding the speech models (default: IVR_MODELS_DIR, else models/ in the repository).",
)


def configured_model_setting() -> str | None:
    """IVR_VOSK_MODEL: a model name under the models folder, or a path."""
    return speech_model_location(read_environment())[0]


def configured_models_dir() -> Path:
    """IVR_MODELS_DIR, else models/ at the repository root."""
    return speech_model_location(read_environment())[1]


class _DownloadProgress:
    """Adapts fetch_model's (done, total) callback to a click progress bar opened once the size is known."""

    def __init__(self, label: str, fallback_total: int | None) -> None:
        self.label = label
        self.fallback_total = fallback_total
        self.bar: Any = None
        self.shown = 0

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            length = total or self.fallback_total
            if not length:
                return
            self.bar = click.progressbar(length=length, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.group("models")
def models() -> None:
    """Speech models (Vosk): download, install by hand, list."""


@models.command("fetch")
@click.argument("name", required=False)
@models_dir_option
@click.option("--url", help="Download from this URL instead of the known one.")
@click.option("--sha256", "expected_sha256", help="Expected SHA-256 (required for a model not in the table).")
@click.option("--size", "expected_size", type=int, help="Expected size in bytes.")
@click.option("--force", is_flag=True, help="Replace the model if it is already installed.")
def fetch(
    name: str | None,
    models_dir: Path | None,
    url: str | None,
    expected_sha256: str | None,
    expected_size: int | None,
    force: bool,
) -> None:
    """Download, verify and unpack model NAME (default: the Chinese model vosk-model-small-cn-0.22)."""
    from ivr.speech.model_store import (
        DEFAULT_MODEL_NAME,
        KNOWN_MODELS,
        ModelStoreError,
        fetch_model,
        model_layout_problems,
    )

    name = name or DEFAULT_MODEL_NAME
    models_dir = models_dir or configured_models_dir()
    if not force and not model_layout_problems(models_dir / name):
        click.echo(f"{name} is already installed: {models_dir / name} (use --force to fetch it again)")
        return
    known = KNOWN_MODELS.get(name)
    progress = _DownloadProgress(f"downloading {name}", expected_size or (known.size if known else None))
    try:
        path = fetch_model(
            name,
            models_dir,
            url=url,
            expected_size=expected_size,
            expected_sha256=expected_sha256,
            progress=progress,
            force=force,
        )
    except ModelStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        progress.close()
    click.echo(f"installed {name}: {path}")


@models.command("install")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@models_dir_option
@click.option("--name", help="Model name (default: the file name without .zip).")
@click.option("--sha256", "expected_sha256", help="Expected SHA-256 (required for a model not in the table).")
@click.option("--size", "expected_size", type=int, help="Expected size in bytes.")
@click.option("--force", is_flag=True, help="Replace the model if it is already installed.")
def install(
    archive: Path,
    models_dir: Path | None,
    name: str | None,
    expected_sha256: str | None,
    expected_size: int | None,
    force: bool,
) -> None:
    """Verify and unpack a model zip downloaded by hand (ARCHIVE is left in place)."""
    from ivr.speech.model_store import ModelStoreError, install_model_archive

    models_dir = models_dir or configured_models_dir()
    try:
        path = install_model_archive(
            archive,
            models_dir,
            name=name,
            expected_size=expected_size,
            expected_sha256=expected_sha256,
            force=force,
        )
    except ModelStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"installed {path.name}: {path}")


@models.command("list")
@models_dir_option
def list_models(models_dir: Path | None) -> None:
    """Installed models, with the configured one (IVR_VOSK_MODEL) marked `*`."""
    from ivr.speech.engine import resolve_model_path
    from ivr.speech.model_store import installed_models, model_layout_problems

    models_dir = models_dir or configured_models_dir()
    configured = resolve_model_path(configured_model_setting(), models_dir)
    installed = installed_models(models_dir)
    if not installed:
        click.echo(f"no models installed in {models_dir}")
    for path in installed:
        marker = "*" if path.resolve() == configured.resolve() else " "
        click.echo(f"{marker} {path.name}")
    if model_layout_problems(configured):
        click.echo(f"configured: {configured} (not installed: run `ivr models fetch`)")
    else:
        click.echo(f"configured: {configured}")


@click.command("transcribe")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--model",
    "model_setting",
    help="Model folder or name under models/ (default: IVR_VOSK_MODEL, else vosk-model-small-cn-0.22).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON with every word's start, end and confidence.")
@click.option(
    "--low-confidence",
    type=click.FloatRange(0, 1),
    default=0.6,
    show_default=True,
    help="Words below this confidence are marked.",
)
def transcribe(files: tuple[Path, ...], model_setting: str | None, as_json: bool, low_confidence: float) -> None:
    """Transcribe recordings (WAV, μ-law WAV, MP3) offline and flag urgent ones."""
    from ivr.speech.audio import UnreadableAudio
    from ivr.speech.engine import SpeechEngine, SpeechModelError, resolve_model_path
    from ivr.speech.triage import triage

    path = resolve_model_path(model_setting or configured_model_setting(), configured_models_dir())
    try:
        engine = SpeechEngine.from_path(path, low_confidence_threshold=low_confidence)
    except SpeechModelError as exc:
        raise click.ClickException(str(exc)) from exc

    results: list[dict[str, Any]] = []
    with click.progressbar(files, label="transcribing", file=sys.stderr, hidden=len(files) < 2) as bar:
        for file in bar:
            try:
                transcripts = engine.transcribe_audio(file)
            except UnreadableAudio as exc:
                results.append({"file": str(file), "error": str(exc), "channels": []})
                continue
            channels = []
            for transcript in transcripts:
                verdict = triage(transcript.text)
                channels.append(
                    transcript.as_dict()
                    | {"urgent": verdict.urgent, "reasons": verdict.reasons, "matched": verdict.matched}
                )
            results.append({"file": str(file), "error": None, "channels": channels})

    if as_json:
        click.echo(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for result in results:
            _echo_result(result)
    failed = [result for result in results if result["error"]]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(results)} files could not be read")


def _echo_result(result: dict[str, Any]) -> None:
    if result["error"]:
        click.echo(f"{result['file']}: error: {result['error']}", err=True)
        return
    for channel in result["channels"]:
        text = channel["text"] or "(no speech recognised)"
        click.echo(f"{result['file']} [{channel['channel']}, {channel['duration']:.1f} s]: {text}")
        if channel["urgent"]:
            click.echo(f"  紧急: {', '.join(channel['reasons'])} ({', '.join(channel['matched'])})")
        unsure = [word["word"] for word in channel["words"] if word["low_confidence"]]
        if unsure:
            click.echo(f"  low confidence: {' '.join(unsure)}")
