"""Shared by the load and benchmark scripts: a throwaway `ivr serve`, small statistics helpers, and
what the webhook benchmark needs to pin a server to a core and read the CPU time it used."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from ivr.devphone.net import free_port

REPO = Path(__file__).resolve().parent.parent
IVR = str(REPO / ".venv" / "bin" / "ivr")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ivr(env: dict[str, str], *args: str) -> str:
    """Run an `ivr` command for the throwaway server and return its output."""
    return subprocess.run([IVR, *args], env=env, check=True, capture_output=True, text=True).stdout


def _own_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        # The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a server has used so far, all its threads and its worker processes (gunicorn's
    master and worker): utime+stime from /proc/<pid>/stat, summed over the process and its descendants."""
    total = 0.0
    for process in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):  # ended meanwhile
            total += _own_cpu_seconds(process)
    return total


def task_cpu_ns(pid: int) -> int:
    """CPU nanoseconds the live threads of `pid` have run: the scheduler's own count (the first field of
    /proc/<pid>/task/*/schedstat), exact to the nanosecond where utime+stime are sampled at the clock tick.
    A thread that has ended is no longer counted: for servers whose threads live as long as they do."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            pass
    return total


def core_busy_ns(cores: list[int]) -> dict[int, int]:
    """How long each core has been busy (user, nice, system, irq, softirq and the hypervisor's steal), in
    nanoseconds since boot, from /proc/stat (clock ticks)."""
    tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    wanted = {f"cpu{core}": core for core in cores}
    busy: dict[int, int] = {}
    with open("/proc/stat") as fh:
        for line in fh:
            name, *fields = line.split()
            if name in wanted:
                user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
                busy[wanted[name]] = (user + nice + system + irq + softirq + steal) * tick_ns
    return busy


def pinned_to(cpus: set[int] | None) -> Callable[[], None] | None:
    """A Popen preexec_fn that pins the child (and every thread it starts) to `cpus`."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def wait_until_healthy(url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    """Wait (at most 20 s) for GET `url` to answer 2xx; SystemExit pointing at the log otherwise."""
    for _ in range(200):
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}; see {log_path}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except (requests.ConnectionError, requests.Timeout):  # the worker is still starting
            pass
        time.sleep(0.1)
    raise SystemExit(f"server did not start; see {log_path}")


@contextmanager
def served(
    command: list[str], env: dict[str, str], health_url: str, log_path: Path, cpus: set[int] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server command (pinned to `cpus` when given) until it answers `health_url`; stop it after."""
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pinned_to(cpus))
        try:
            wait_until_healthy(health_url, server, log_path)
            yield server
        finally:
            server.terminate()
            server.wait(timeout=30)


@contextmanager
def local_server(
    workdir: Path, settings: dict[str, str], *serve_args: str, cpus: set[int] | None = None
) -> Iterator[tuple[str, dict[str, str]]]:
    """A migrated development server on a free port with its own instance folder; yields (url, env)."""
    with local_server_process(workdir, settings, *serve_args, cpus=cpus) as (url, env, _server):
        yield url, env


@contextmanager
def local_server_process(
    workdir: Path, settings: dict[str, str], *serve_args: str, cpus: set[int] | None = None
) -> Iterator[tuple[str, dict[str, str], subprocess.Popen[bytes]]]:
    """Like local_server, and also yields the server process (to read its CPU time)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "IVR_ENV": "development",
        "IVR_INSTANCE_DIR": str(workdir / "instance"),
        "IVR_RECORDINGS_DIR": str(workdir / "recordings"),
        "IVR_PUBLIC_URL": url,
        **settings,
    }
    ivr(env, "init-db")
    command = [IVR, "serve", "--port", str(port), *serve_args]
    with served(command, env, f"{url}/healthz", workdir / "server.log", cpus) as server:
        yield url, env, server
