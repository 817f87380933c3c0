"""The line's sentences (from prompts.toml) and how numbers are put into words for the TTS."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

PROMPTS_FILE = Path(__file__).with_name("prompts.toml")


@cache
def all_prompts() -> dict[str, str]:
    """Every prompt template by key."""
    with PROMPTS_FILE.open("rb") as fh:
        return tomllib.load(fh)


def prompt(key: str, **values: object) -> str:
    """The sentence `key` with its placeholders filled in."""
    return all_prompts()[key].format(**values)
