"""Shared by the load and benchmark scripts: a throwaway `ivr serve` and small statistics helpers."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
IVR = str(REPO / ".venv" / "bin" / "ivr")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ivr(env: dict[str, str], *args: str) -> str:
    """Run an `ivr` command for the throwaway server and return its output."""
    return subprocess.run([IVR, *args], env=env, check=True, capture_output=True, text=True).stdout


@contextmanager
def local_server(workdir: Path, settings: dict[str, str], *serve_args: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A migrated development server on a free port with its own instance folder; yields (url, env)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "IVR_ENV": "development", "IVR_INSTANCE_DIR": str(workdir / "instance"),
           "IVR_RECORDINGS_DIR": str(workdir / "recordings"), "IVR_PUBLIC_URL": url, **settings}
    ivr(env, "init-db")
    with open(workdir / "server.log", "w") as log:
        server = subprocess.Popen([IVR, "serve", "--port", str(port), *serve_args], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            for _ in range(200):
                try:
                    if requests.get(f"{url}/healthz", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.1)
            else:
                raise SystemExit(f"server did not start; see {workdir / 'server.log'}")
            yield url, env
        finally:
            server.terminate()
            server.wait(timeout=30)
