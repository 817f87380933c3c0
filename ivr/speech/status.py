"""Is the line transcribing messages? The configured speech model's place and state, for /healthz, the
console, `ivr serve` and the read-back."""

from __future__ import annotations

from pathlib import Path

from ivr.config import Settings
from ivr.speech.engine import model_is_loaded, resolve_model_path
from ivr.speech.model_store import model_layout_problems


def speech_model_path(settings: Settings) -> Path:
    """Where the configured Vosk model should be (it may not be installed)."""
    return resolve_model_path(settings.speech_model, settings.models_dir)


def speech_model_installed(settings: Settings) -> bool:
    return not model_layout_problems(speech_model_path(settings))


def speech_model_status(settings: Settings) -> str:
    """One line for /healthz, the log and the console: is the line transcribing messages?"""
    path = speech_model_path(settings)
    if speech_model_installed(settings):
        state = "loaded" if model_is_loaded(path) else "installed (loads with the first message)"
        return f"{state}: {path.name}"
    return f"missing: {path} — messages are kept but not transcribed until a model is installed (`ivr models fetch`)"
