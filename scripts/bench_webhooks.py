#!/usr/bin/env python3
"""Webhook cost against a yardstick: `ivr serve` side by side with a minimal Flask app doing the same work.

Each app runs on the same server (ivr.server.serve_wsgi: gunicorn's gthread worker, the same thread count)
pinned to one core, the load on the other core; CPU is read from the worker process that answers. The
minimal app (scripts/minimal_webhook_app.py) checks the signature, writes what ivr writes for each step
(the call row; on `recorded` a ticket, the day's counter, a recording and its job; …) with plain
SQLAlchemy Core, and answers TwiML of the same shape, in the same kind of database. Both get the same
properly signed Twilio requests, in four phases:

* /twilio/voice, each with a new CallSid and all the form fields Twilio sends: one at a time for the CPU
  each request costs, then 8 at a time for p50 / p95 latency;
* whole calls (voice, menu, room, room/confirm, recorded, recording-status, confirm, status), taken from
  one call the dev phone makes first, replayed with new CallSids / RecordingSids: one call at a time for
  the CPU per webhook (and per step, for ivr), then 8 calls at a time for latency.

CPU is the answering process's run time from the scheduler (the sum of /proc/<pid>/task/*/schedstat, in
nanoseconds; utime+stime in /proc/<pid>/stat are sampled at the clock tick, too coarse for a second's run).

The run is `--repeats` repeats of the four phases; within each, the two apps take turns — call by call when
one at a time, in `--parts` parts when concurrent (never both at once: they share the server core), who goes
first alternating — so both see the same background load. For each repeat and phase the ratio ivr / minimal
is taken from that pair; the table gives the median of the repeats and, in brackets, the lowest and highest
repeat, and how many repeats met the target. Each repeat first waits (up to `--quiet-wait`) for the
machine's other processes to quieten, and the report says how busy the machine was: the load average, and
the share of each core that other processes used while the phases ran.

    .venv/bin/python -m scripts.bench_webhooks
    .venv/bin/python -m scripts.bench_webhooks --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

`ivr serve` runs with `--workers 0`: the jobs a call schedules (the recording download) stay queued, so
only webhook work is counted. A local PostgreSQL is not pinned by this script; to keep the server core for
the app, pin it to the load core first (`taskset -p -c 0 <pid>` for each postgres process). On a machine
others are using, trust CPU more than latency, and compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

from ivr.devphone.audio import write_tone_wav
from ivr.devphone.callers import Message
from ivr.devphone.emulator import TwilioEmulator, new_sid
from ivr.devphone.recording_server import RecordingServer
from ivr.devphone.transport import HttpTransport
from ivr.telephony.prompts import prompt
from scripts.benchkit import core_busy_ns, free_port, local_server_process, percentile, served, task_cpu_ns

REPO = Path(__file__).resolve().parent.parent

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "bench-webhooks-auth-token"
MINIMAL_APP = REPO / "scripts" / "minimal_webhook_app.py"
CALL_SCRIPT = ["1", "3*2*501#", "1", None, "1"]  # repair, room 3-2-501, right, a message, confirmed
TARGET_CPU, TARGET_P95 = 2.0, 2.5


# --- requests --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """One request Twilio makes: the public path (with query) and the form."""

    step: str
    path: str
    params: dict[str, str]


@dataclass(frozen=True)
class SignedRequest:
    """A webhook ready to send: path, encoded body and headers (signature, idempotency token)."""

    step: str
    path: str
    body: bytes
    headers: dict[str, str]


def sign(webhook: Webhook, public_url: str) -> SignedRequest:
    """Sign as Twilio does (over the public URL and the form), with a fresh idempotency token."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(public_url + webhook.path, webhook.params)
    netloc = urlsplit(public_url).netloc
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
        "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        "User-Agent": "TwilioProxy/1.1",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": netloc,
    }
    return SignedRequest(webhook.step, webhook.path, urlencode(webhook.params).encode(), headers)


def record_call(public_url: str, workdir: Path) -> list[Webhook]:
    """Make one call with the dev phone against the running server; return its webhooks in order."""
    wav = write_tone_wav(workdir / "message.wav", seconds=3.0)
    script = [step if step is not None else Message(wav) for step in CALL_SCRIPT]
    with RecordingServer(ACCOUNT_SID, AUTH_TOKEN) as recordings:
        phone = TwilioEmulator(HttpTransport(public_url, public_url), public_url, ACCOUNT_SID, AUTH_TOKEN, recordings)
        result = phone.call(script, from_="+8613912345678").raise_for_errors()
    webhooks = []
    for exchange in result.requests:
        parts = urlsplit(exchange.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        webhooks.append(Webhook(parts.path.removeprefix("/twilio/"), path, dict(exchange.params)))
    return webhooks


def fresh_call(template: Sequence[Webhook]) -> list[Webhook]:
    """The template call with new SIDs (the call's and every recording's), as a different call."""
    sids = {
        value
        for webhook in template
        for key, value in webhook.params.items()
        if key in ("CallSid", "RecordingSid") and value
    }
    renames = {sid: new_sid(sid[:2]) for sid in sids}

    def renamed(text: str) -> str:
        for old, new in renames.items():
            text = text.replace(old, new)
        return text

    return [Webhook(w.step, renamed(w.path), {k: renamed(v) for k, v in w.params.items()}) for w in template]


def fresh_voice(template: Webhook) -> Webhook:
    """The first webhook of a new call: /twilio/voice with a new CallSid."""
    return fresh_call([template])[0]


# --- sending ---------------------------------------------------------------------------------------


class BadAnswer(Exception):
    """A webhook was refused, failed, or answered with the line's apology (the step failed inside)."""


TROUBLE = prompt("system_trouble").encode()


class Client:
    """One keep-alive HTTP connection to the server under test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(self, request: SignedRequest) -> float:
        """Send one webhook, check the answer is TwiML (and not the apology); return the seconds it took."""
        started = time.perf_counter()
        try:
            self.connection.request("POST", request.path, request.body, request.headers)
            reply = self.connection.getresponse()
            body = reply.read()
        except (ConnectionError, http.client.HTTPException):
            self.connection.close()  # the server closed a kept-alive connection: once more on a new one
            started = time.perf_counter()
            self.connection.request("POST", request.path, request.body, request.headers)
            reply = self.connection.getresponse()
            body = reply.read()
        elapsed = time.perf_counter() - started
        if reply.status != 200 or b"<Response" not in body or TROUBLE in body:
            raise BadAnswer(f"{request.path} -> HTTP {reply.status}: {body[:300]!r}")
        return elapsed

    def close(self) -> None:
        self.connection.close()


@dataclass
class Run:
    """What one phase measured on one app."""

    requests: int = 0
    cpu_ns: int = 0
    wall_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    step_latencies: dict[str, list[float]] = field(default_factory=dict)
    step_cpu_ns: dict[str, list[int]] = field(default_factory=dict)
    # What the other processes on the machine used of each core meanwhile (0–1 of the core).
    others: dict[int, float] = field(default_factory=dict)

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_ns / 1e6 / self.requests

    def latency_ms(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1000

    @property
    def per_second(self) -> float:
        return self.requests / self.wall_seconds

    def add(self, other: Run) -> None:
        """Take in another part of the same phase (the apps took turns in parts)."""
        wall = self.wall_seconds + other.wall_seconds
        self.others = {
            core: (self.others.get(core, 0.0) * self.wall_seconds + share * other.wall_seconds) / wall
            for core, share in other.others.items()
        }
        self.requests += other.requests
        self.cpu_ns += other.cpu_ns
        self.wall_seconds = wall
        self.latencies += other.latencies
        for step, values in other.step_latencies.items():
            self.step_latencies.setdefault(step, []).extend(values)


@dataclass(frozen=True)
class Watch:
    """What to watch besides the server under test: the cores (pinned: the servers' and the load's) and
    our own processes, so that what the machine's other processes took of each core can be told apart."""

    server_core: int | None
    load_core: int | None
    server_pids: tuple[int, ...]  # both servers, master and worker


@contextmanager
def measured(run: Run, pid: int, watch: Watch) -> Iterator[None]:
    """Around a phase: the server's CPU (its threads' scheduler run time), the wall time, and the share of
    each watched core that other processes used meanwhile (all cores together when nothing is pinned)."""
    cores = [core for core in (watch.server_core, watch.load_core) if core is not None]
    busy_before, servers_before, load_before = core_busy_ns(cores), servers_cpu_ns(watch), own_cpu_ns()
    cpu_before, started = task_cpu_ns(pid), time.perf_counter()
    yield
    run.wall_seconds = time.perf_counter() - started
    run.cpu_ns = task_cpu_ns(pid) - cpu_before
    run.requests = len(run.latencies)
    busy = {core: after - busy_before[core] for core, after in core_busy_ns(cores).items()}
    servers, load = servers_cpu_ns(watch) - servers_before, own_cpu_ns() - load_before
    wall_ns = run.wall_seconds * 1e9
    if watch.server_core is not None and watch.load_core is not None:
        run.others = {
            watch.server_core: max(0.0, (busy[watch.server_core] - servers) / wall_ns),
            watch.load_core: max(0.0, (busy[watch.load_core] - load) / wall_ns),
        }
    else:
        run.others = {-1: max(0.0, (sum(busy.values()) - servers - load) / wall_ns)}


def servers_cpu_ns(watch: Watch) -> int:
    return sum(task_cpu_ns(pid) for pid in watch.server_pids)


def own_cpu_ns() -> int:
    """This process's CPU (the load generator): all its threads, the finished ones too."""
    return time.process_time_ns()


def one_at_a_time(
    servers: Sequence[Server], batches: dict[str, list[list[SignedRequest]]], watch: Watch, *, per_step: bool
) -> dict[str, Run]:
    """The apps take turns call by call (a call to one, then one to the other, who goes first alternating),
    each on its own connection, one request at a time: both see the same moments of the machine's load. Each
    server's CPU over the phase (it works only on its own requests), and per step when `per_step`."""
    runs = {server.app: Run() for server in servers}
    clients = {server.app: Client(server.port) for server in servers}
    shared = Run()
    with measured(shared, servers[0].pid, watch):
        cpu_before = {server.app: task_cpu_ns(server.pid) for server in servers}
        for number in range(len(batches[servers[0].app])):
            for server in servers if number % 2 == 0 else servers[::-1]:
                run = runs[server.app]
                for request in batches[server.app][number]:
                    before = task_cpu_ns(server.pid) if per_step else 0
                    run.latencies.append(clients[server.app].send(request))
                    if per_step:
                        run.step_cpu_ns.setdefault(request.step, []).append(task_cpu_ns(server.pid) - before)
        for server in servers:
            runs[server.app].cpu_ns = task_cpu_ns(server.pid) - cpu_before[server.app]
    for server in servers:
        runs[server.app].requests = len(runs[server.app].latencies)
        runs[server.app].wall_seconds, runs[server.app].others = shared.wall_seconds, shared.others
        clients[server.app].close()
    return runs


def in_turns(
    servers: Sequence[Server],
    batches: dict[str, list[list[SignedRequest]]],
    concurrency: int,
    parts: int,
    watch: Watch,
) -> dict[str, Run]:
    """`concurrency` calls at a time, the apps taking turns in `parts` parts (one app's part, then the
    other's, who goes first alternating): close in time, never at once (they share the server core)."""
    runs = {server.app: Run() for server in servers}
    for part in range(parts):
        for server in servers if part % 2 == 0 else servers[::-1]:
            runs[server.app].add(concurrently(server, batches[server.app][part::parts], concurrency, watch))
    return runs


def concurrently(server: Server, calls: Sequence[Sequence[SignedRequest]], concurrency: int, watch: Watch) -> Run:
    """`concurrency` clients, each taking the next call and sending its webhooks in order."""
    run = Run()
    pending: Iterator[Sequence[SignedRequest]] = iter(calls)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client_loop() -> None:
        client = Client(server.port)
        try:
            while True:
                with lock:
                    call = next(pending, None)
                if call is None:
                    return
                for request in call:
                    seconds = client.send(request)
                    with lock:
                        run.latencies.append(seconds)
                        run.step_latencies.setdefault(request.step, []).append(seconds)
        except BaseException as exc:  # reported after the run
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop) for _ in range(concurrency)]
    with measured(run, server.pid, watch):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return run


# --- the servers -----------------------------------------------------------------------------------


@dataclass
class Server:
    """A running server under test; `pid` is the process that answers (gunicorn's worker)."""

    app: str
    public_url: str
    pid: int
    master: int

    @property
    def port(self) -> int:
        return int(urlsplit(self.public_url).port or 80)


def answering_process(pid: int) -> int:
    """The process that runs the app: the server's one worker (gunicorn forks it once the master is up; it
    answers /healthz before this is called), or the server itself when it has no child."""
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        children = [int(child) for child in fh.read().split()]
    if len(children) > 1:
        raise SystemExit(f"server {pid} has {len(children)} child processes; expected one worker")
    return children[0] if children else pid


@contextmanager
def ivr_server(workdir: Path, database_url: str | None, threads: int, cpus: set[int] | None) -> Iterator[Server]:
    """`ivr serve` on a fresh database, no job workers, no speech model."""
    settings = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "IVR_SECRET_KEY": "bench-webhooks-" + "k" * 32,
        "IVR_DUTY_NUMBERS": "+8613800000001",
        "IVR_MODELS_DIR": str(workdir / "models"),
    }
    if database_url:
        settings["IVR_DATABASE_URL"] = database_url
    serve_args = ("--threads", str(threads), "--workers", "0")
    with local_server_process(workdir, settings, *serve_args, cpus=cpus) as (url, _env, process):
        yield Server("ivr", url, answering_process(process.pid), process.pid)


@contextmanager
def minimal_server(workdir: Path, database_url: str | None, threads: int, cpus: set[int] | None) -> Iterator[Server]:
    """scripts/minimal_webhook_app.py on the same server as `ivr serve` (ivr.server), on a fresh database."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MINIMAL_DATABASE_URL": database_url or f"sqlite:///{workdir / 'minimal.sqlite3'}",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_URL": url,
    }
    command = [sys.executable, str(MINIMAL_APP), "--port", str(port), "--threads", str(threads)]
    with served(command, env, f"{url}/healthz", workdir / "server.log", cpus) as process:
        yield Server("minimal", url, answering_process(process.pid), process.pid)


@contextmanager
def throwaway_database(server_url: str, name: str) -> Iterator[str]:
    """A new empty database `name` on the PostgreSQL server of `server_url`, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- the measurement -------------------------------------------------------------------------------


PHASES = ("voice_alone", "voice_together", "calls_alone", "calls_together")
APPS = ("minimal", "ivr")


@dataclass
class Results:
    """Everything measured on one database: each phase, repeat by repeat, for each app."""

    runs: dict[str, dict[str, list[Run]]] = field(
        default_factory=lambda: {app: {phase: [] for phase in PHASES} for app in APPS}
    )
    idle_cpu_ms_per_s: dict[str, float] = field(default_factory=dict)

    def values(self, app: str, phase: str, metric: Callable[[Run], float]) -> list[float]:
        """`metric` of each repeat of `phase` on `app`."""
        return [metric(run) for run in self.runs[app][phase]]

    def ratios(self, phase: str, metric: Callable[[Run], float]) -> list[float]:
        """ivr / minimal of `metric`, repeat by repeat (each pair ran back to back)."""
        return [
            metric(ours) / metric(theirs)
            for ours, theirs in zip(self.runs["ivr"][phase], self.runs["minimal"][phase], strict=True)
        ]

    def others(self) -> dict[int, list[float]]:
        """What other processes used of each watched core, phase run by phase run."""
        found: dict[int, list[float]] = {}
        for phases in self.runs.values():
            for runs in phases.values():
                for run in runs:
                    for core, share in run.others.items():
                        found.setdefault(core, []).append(share)
        return found


def cpu_ms(run: Run) -> float:
    return run.cpu_ms_per_request


def p50_ms(run: Run) -> float:
    return run.latency_ms(0.50)


def p95_ms(run: Run) -> float:
    return run.latency_ms(0.95)


def signed_batch(phase: str, server: Server, template: list[Webhook], count: int) -> list[list[SignedRequest]]:
    """`count` new calls (or /twilio/voice requests) for one server, signed before any clock starts."""
    if phase.startswith("voice"):
        return [[sign(fresh_voice(template[0]), server.public_url)] for _ in range(count)]
    return [[sign(w, server.public_url) for w in fresh_call(template)] for _ in range(count)]


def run_phase(
    phase: str, servers: Sequence[Server], template: list[Webhook], count: int, args: argparse.Namespace, watch: Watch
) -> dict[str, Run]:
    """One repeat of one phase on both servers, in turns."""
    batches = {server.app: signed_batch(phase, server, template, count) for server in servers}
    if phase.endswith("alone"):
        return one_at_a_time(servers, batches, watch, per_step=phase == "calls_alone")
    return in_turns(servers, batches, args.concurrency, args.parts, watch)


def idle_cpu_ms_per_s(pid: int, seconds: float = 1.0) -> float:
    """What the server burns doing nothing (pollers, timers), in CPU ms per second."""
    before = task_cpu_ns(pid)
    time.sleep(seconds)
    return (task_cpu_ns(pid) - before) / 1e6 / seconds


def measure(servers: list[Server], template: list[Webhook], args: argparse.Namespace, watch: Watch) -> Results:
    """Warm both servers up, then `--repeats` repeats of every phase, the apps taking turns within each
    (call by call one at a time, in parts for the concurrent phases) so that a change in the machine's
    background load hits both alike."""
    counts = {
        "voice_alone": args.requests,
        "voice_together": args.concurrent_requests,
        "calls_alone": args.calls,
        "calls_together": args.concurrent_calls,
    }
    results = Results()
    for phase, count in (("voice_alone", args.warmup), ("calls_alone", 5), ("calls_together", 2 * args.parts)):
        run_phase(phase, servers, template, count, args, watch)
    for server in servers:
        results.idle_cpu_ms_per_s[server.app] = idle_cpu_ms_per_s(server.pid)
    for repeat in range(args.repeats):
        wait_for_quiet(watch, args.quiet_wait, args.quiet_share)
        order = servers if repeat % 2 == 0 else servers[::-1]
        for phase in PHASES:
            for app, run in run_phase(phase, order, template, counts[phase], args, watch).items():
                results.runs[app][phase].append(run)
        print(f"  repeat {repeat + 1}/{args.repeats} done (load average {os.getloadavg()[0]:.2f})", file=sys.stderr)
    return results


def wait_for_quiet(watch: Watch, patience: float, share: float) -> None:
    """Wait (at most `patience` seconds) until, over one second, the machine's other processes use less than
    `share` of one core on the watched cores together: a repeat then starts on a quiet machine when there is
    one."""
    cores = [core for core in (watch.server_core, watch.load_core) if core is not None] or list(os.sched_getaffinity(0))
    deadline = time.monotonic() + patience
    while True:
        before, servers_before, started = core_busy_ns(cores), servers_cpu_ns(watch), time.perf_counter()
        time.sleep(1.0)
        wall_ns = (time.perf_counter() - started) * 1e9
        used = sum(core_busy_ns(cores).values()) - sum(before.values()) - (servers_cpu_ns(watch) - servers_before)
        if used / wall_ns < share or time.monotonic() > deadline:
            return


# --- the report ------------------------------------------------------------------------------------


def spread(values: list[float], digits: int = 2, unit: str = "") -> str:
    """'median (min–max)' of the repeats."""
    middle = f"{statistics.median(values):.{digits}f}{unit}"
    if len(values) < 2:
        return middle
    return f"{middle} ({min(values):.{digits}f}–{max(values):.{digits}f})"


ROW = "{:<11} {:<8} {:<24} {:>9}  {:<20} {:<20} {:<20} {:<8}"


def report(database: str, results: Results, args: argparse.Namespace, steps: int) -> None:
    """Print the table for one database: each app, the ratios ivr / minimal, per step, and the load."""
    for label, alone, together in (
        ("/twilio/voice", "voice_alone", "voice_together"),
        (f"whole call ({steps} webhooks)", "calls_alone", "calls_together"),
    ):
        for app in APPS:
            runs = results.runs[app]
            print(
                ROW.format(
                    database,
                    app,
                    label,
                    f"{runs[alone][0].requests}×{len(runs[alone])}",
                    spread(results.values(app, alone, cpu_ms)),
                    spread(results.values(app, together, p50_ms), 1),
                    spread(results.values(app, together, p95_ms), 1),
                    f"{statistics.median(results.values(app, together, lambda run: run.per_second)):.0f}",
                )
            )
        cpu, p50, p95 = (
            results.ratios(alone, cpu_ms),
            results.ratios(together, p50_ms),
            results.ratios(together, p95_ms),
        )
        verdict = f"CPU {verdict_of(cpu, TARGET_CPU)}, p95 {verdict_of(p95, TARGET_P95)}"
        print(
            ROW.format(
                database,
                "ratio",
                "ivr / minimal",
                "",
                spread(cpu, unit="×"),
                spread(p50, unit="×"),
                spread(p95, unit="×"),
                verdict,
            )
        )
    indent = " " * 12
    step_cpu: dict[str, list[int]] = {}
    for run in results.runs["ivr"]["calls_alone"]:
        for step, values_ns in run.step_cpu_ns.items():
            step_cpu.setdefault(step, []).extend(values_ns)
    print(
        indent
        + "ivr CPU ms per step, one call at a time (median): "
        + ", ".join(f"{step} {statistics.median(v) / 1e6:.2f}" for step, v in step_cpu.items())
    )
    for app in APPS:
        latencies: dict[str, list[float]] = {}
        for run in results.runs[app]["calls_together"]:
            for step, seconds in run.step_latencies.items():
                latencies.setdefault(step, []).extend(seconds)
        print(
            indent
            + f"{app} p95 ms per step, {args.concurrency} calls at a time (all repeats): "
            + ", ".join(f"{step} {percentile(latencies[step], 0.95) * 1000:.0f}" for step in step_cpu)
        )
    print(indent + "idle CPU ms/s: " + ", ".join(f"{app} {ms:.1f}" for app, ms in results.idle_cpu_ms_per_s.items()))
    others = results.others()
    names = {args.server_cpu: "server core", args.load_cpu: "load core", -1: "both cores"}
    print(
        indent
        + "other processes' share of each core while the phases ran, median (max): "
        + ", ".join(f"{names[core]} {statistics.median(v):.0%} ({max(v):.0%})" for core, v in sorted(others.items()))
    )


def verdict_of(ratios: list[float], target: float) -> str:
    """'within 2×' or 'OVER 2×' by the median, and how many repeats were within."""
    within = sum(ratio <= target for ratio in ratios)
    return f"{'within' if statistics.median(ratios) <= target else 'OVER'} {target:g}× ({within}/{len(ratios)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="repeats of every phase on both apps")
    parser.add_argument(
        "--requests", type=int, default=250, help="/twilio/voice one at a time, per repeat (CPU per request)"
    )
    parser.add_argument(
        "--concurrent-requests",
        type=int,
        default=400,
        help="/twilio/voice requests sent `--concurrency` at a time, per repeat (latency)",
    )
    parser.add_argument("--calls", type=int, default=30, help="whole calls one at a time, per repeat (CPU per webhook)")
    parser.add_argument(
        "--concurrent-calls", type=int, default=64, help="whole calls `--concurrency` at a time, per repeat"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--parts", type=int, default=4, help="the concurrent phases: parts per repeat, the apps taking turns"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each repeat, wait up to this many seconds for the machine's other processes to quieten",
    )
    parser.add_argument(
        "--quiet-share", type=float, default=0.15, help="quiet: others use less than this share of one core"
    )
    parser.add_argument("--warmup", type=int, default=100, help="/twilio/voice requests before measuring")
    parser.add_argument("--threads", type=int, default=8, help="server threads, both apps")
    parser.add_argument("--server-cpu", type=int, default=1, help="the core both servers are pinned to")
    parser.add_argument("--load-cpu", type=int, default=0, help="the core this load generator is pinned to")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("IVR_TEST_DATABASE_URL"),
        help="a PostgreSQL server to measure on too (default: IVR_TEST_DATABASE_URL); "
        "throwaway databases are created there and dropped",
    )
    parser.add_argument("--skip-sqlite", action="store_true", help="measure PostgreSQL only")
    args = parser.parse_args()
    # Stopped from outside, still stop the servers and drop the databases (the context managers do).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))

    available = os.sched_getaffinity(0)
    server_cpus: set[int] | None = {args.server_cpu}
    if len(available) < 2 or not {args.server_cpu, args.load_cpu} <= available:
        print(
            f"warning: cannot pin to CPUs {args.server_cpu} / {args.load_cpu} (have {sorted(available)}); not pinning",
            file=sys.stderr,
        )
        server_cpus = None
    else:
        os.sched_setaffinity(0, {args.load_cpu})  # before any thread starts: every client thread inherits it

    databases: list[tuple[str, str | None]] = [] if args.skip_sqlite else [("SQLite", None)]
    if args.postgres_url:
        databases.append(("PostgreSQL", args.postgres_url))
    workdir = Path(tempfile.mkdtemp(prefix="ivr-bench-webhooks-"))
    pinning = f"servers pinned to CPU {args.server_cpu}, load on CPU {args.load_cpu}" if server_cpus else "no pinning"
    print(
        f"webhook benchmark: {pinning}; gunicorn gthread, {args.threads} threads; {args.repeats} repeats, the apps "
        f"taking turns in each; median of the repeats (lowest–highest); load average {load_average()} at the start"
    )
    print(
        ROW.format(
            "database",
            "app",
            "what",
            "requests",
            "CPU ms/request",
            f"p50 ms @{args.concurrency}",
            f"p95 ms @{args.concurrency}",
            f"req/s @{args.concurrency}",
        )
    )
    template: list[Webhook] = []
    for database, server_url in databases:
        tag = f"{database.lower()}_{uuid.uuid4().hex[:8]}"
        with (
            database_for(server_url, f"bench_ivr_{tag}") as ivr_url,
            database_for(server_url, f"bench_minimal_{tag}") as minimal_url,
            ivr_server(workdir / f"{database.lower()}-ivr", ivr_url, args.threads, server_cpus) as ours,
            minimal_server(workdir / f"{database.lower()}-minimal", minimal_url, args.threads, server_cpus) as minimal,
        ):
            if not template:
                template = record_call(ours.public_url, workdir)
            watch = Watch(
                args.server_cpu if server_cpus else None,
                args.load_cpu if server_cpus else None,
                (ours.pid, ours.master, minimal.pid, minimal.master),
            )
            results = measure([minimal, ours], template, args, watch)
        report(database, results, args, len(template))
    print(f"load average {load_average()} at the end")
    print(f"whole call: {', '.join(w.step for w in template)}; server logs in {workdir}")
    return 0


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1 / 5 / 15 min)"


@contextmanager
def database_for(server_url: str | None, name: str) -> Iterator[str | None]:
    """A throwaway PostgreSQL database for one server, or None (the server makes its own SQLite file)."""
    if server_url is None:
        yield None
        return
    with throwaway_database(server_url, name) as url:
        yield url


if __name__ == "__main__":
    raise SystemExit(main())
