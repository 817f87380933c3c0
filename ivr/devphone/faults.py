"""Faults for durability tests and the chaos script: a SQLite file locked by another process, a
PostgreSQL server of one's own that can be stopped and started, `ivr serve` in a process that can be
killed, and a transport that runs a hook before chosen webhooks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ivr.devphone.net import free_port
from ivr.devphone.transport import Reply, Transport


@contextmanager
def sqlite_locked_by_another_process(path: str | Path, seconds: float = 120.0) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the SQLite file's write lock (as `sqlite3` in a terminal, a backup or a long
    migration would) until the block ends or `seconds` pass."""
    script = textwrap.dedent("""
        import sqlite3, sys, time
        connection = sqlite3.connect(sys.argv[1], isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        sys.stdin.readline()  # until the test closes stdin
        connection.execute("ROLLBACK")
    """)
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        yield holder
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=seconds)
        holder.stdout.close()


class HookedTransport:
    """Delivers through `inner`, running `before(index, url)` before each webhook (0-based)."""

    def __init__(self, inner: Transport, before: Callable[[int, str], None]) -> None:
        self.inner = inner
        self.before = before
        self.count = 0

    def request(self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
        self.before(self.count, url)
        self.count += 1
        return self.inner.request(method, url, params, headers)

    def post(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
        return self.request("POST", url, params, headers)


def postgres_bindir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    found = [path for path in candidates if (path / "pg_ctl").exists() and (path / "initdb").exists()]
    return found[-1] if found else None


class ThrowawayPostgres:
    """A PostgreSQL server of one test's own (so it can be stopped without hurting the others)."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        assert bindir is not None
        self.bindir = bindir
        # Under /tmp: as root the server runs as `postgres`, which cannot enter pytest's private folders.
        self.root = Path(tempfile.mkdtemp(prefix="ivr-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-locale",
            "--encoding=UTF8",
            "--no-sync",
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "postgres.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs, and delete its files."""
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / program), *args],
            check=True,
            cwd="/",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


IVR = str(Path(sys.executable).with_name("ivr"))


class ServeProcess:
    """`ivr serve` in a subprocess on a free port (its public URL is its own address); it can be killed
    with SIGKILL and started again on the same port and instance folder."""

    def __init__(self, environ: Mapping[str, str], log_path: Path, *extra_args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.environ = {**os.environ, **environ, "IVR_PUBLIC_URL": self.url}
        self.log_path = log_path
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServeProcess:
        import requests

        log = open(self.log_path, "a")  # noqa: SIM115
        self.process = subprocess.Popen(
            [IVR, "serve", "--port", str(self.port), *self.extra_args],
            env=self.environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def healthy() -> bool:
            try:
                return requests.get(f"{self.url}/healthz", timeout=1).status_code in (200, 503)
            except (requests.ConnectionError, requests.Timeout):  # the worker is still starting
                return False

        deadline = time.monotonic() + 60
        while not healthy():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"ivr serve did not start; see {self.log_path}")
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up runs, as when the machine or the OOM killer stops it."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
