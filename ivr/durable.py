"""Writing files that survive a crash: what a caller said must not be lost between rename and disk."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Make a rename in `path` durable (a crash right after could otherwise lose the new name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
