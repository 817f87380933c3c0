#!/usr/bin/env python3
"""Webhook cost against a yardstick: `ivr serve` side by side with a minimal Flask app doing the same work.

Each app runs on the same server (ivr.server.serve_wsgi: gunicorn's gthread worker, the same thread count)
pinned to one core, the load on the other core; CPU is read from the worker process that answers. The
minimal app (scripts/minimal_webhook_app.py) checks the signature, writes what ivr writes for each step
(the call row; on `recorded` a ticket, the day's counter, a recording and its job; …) with plain
SQLAlchemy Core, and answers TwiML of the same shape, in the same kind of database. Both get the same
properly signed Twilio requests:

* /twilio/voice, each with a new CallSid and all the form fields Twilio sends: one at a time for the CPU
  each request costs (the server's utime+stime from /proc/<pid>/stat over the run, divided by the
  requests), then 8 at a time for p50 / p95 latency;
* whole calls (voice, menu, room, room/confirm, recorded, recording-status, confirm, status), taken from
  one call the dev phone makes first, replayed with new CallSids / RecordingSids: one call at a time for
  the CPU per webhook (and per step, for ivr), then 8 calls at a time for latency.

It prints CPU ms per request, p50 / p95 at 8 concurrent and the ratios ivr / minimal, for SQLite and, when
a PostgreSQL URL is given, for PostgreSQL (each app gets a throwaway database created there and dropped).
Both servers run at once (idle one costs nothing); the counts are split into rounds in which each phase
runs on one app and then the other, so the machine's changing background load hits both alike. The table
gives the value over all rounds and, in brackets, the lowest and highest round.

    .venv/bin/python -m scripts.bench_webhooks
    .venv/bin/python -m scripts.bench_webhooks --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

`ivr serve` runs with `--workers 0`: the jobs a call schedules (the recording download) stay queued, so
only webhook work is counted. A local PostgreSQL is not pinned by this script; to keep the server core for
the app, pin it to the load core first (`taskset -p -c 0 <pid>` for each postgres process). On a machine
others are using, compare ratios from the same run, and run it more than once.
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
from collections.abc import Iterator, Sequence
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
from scripts.benchkit import cpu_seconds, free_port, local_server_process, percentile, served

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


def task_cpu_ns(pid: int) -> int:
    """CPU nanoseconds the live threads of `pid` have run (schedstat: precise enough for one request)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


@dataclass
class Run:
    """What one phase measured."""

    requests: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    step_latencies: dict[str, list[float]] = field(default_factory=dict)
    step_cpu_ns: dict[str, list[int]] = field(default_factory=dict)

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_seconds * 1000 / self.requests

    def latency_ms(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1000


def one_at_a_time(pid: int, port: int, calls: Sequence[Sequence[SignedRequest]], *, per_step: bool = False) -> Run:
    """Send every webhook in order on one connection; the server's CPU over the run (and per step)."""
    run = Run()
    client = Client(port)
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    for call in calls:
        for request in call:
            before = task_cpu_ns(pid) if per_step else 0
            run.latencies.append(client.send(request))
            if per_step:
                run.step_cpu_ns.setdefault(request.step, []).append(task_cpu_ns(pid) - before)
    run.wall_seconds = time.perf_counter() - started
    run.cpu_seconds = cpu_seconds(pid) - cpu_before
    run.requests = len(run.latencies)
    client.close()
    return run


def concurrently(pid: int, port: int, calls: Sequence[Sequence[SignedRequest]], concurrency: int) -> Run:
    """`concurrency` clients, each taking the next call and sending its webhooks in order."""
    run = Run()
    pending: Iterator[Sequence[SignedRequest]] = iter(calls)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client_loop() -> None:
        client = Client(port)
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
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.wall_seconds = time.perf_counter() - started
    run.cpu_seconds = cpu_seconds(pid) - cpu_before
    run.requests = len(run.latencies)
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
        yield Server("ivr", url, answering_process(process.pid))


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
        yield Server("minimal", url, answering_process(process.pid))


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


@dataclass
class Results:
    """Everything measured for one app on one database: each phase, round by round."""

    app: str
    rounds: dict[str, list[Run]] = field(default_factory=lambda: {phase: [] for phase in PHASES})
    idle_cpu_ms_per_s: float = 0.0

    def cpu_ms_per_request(self, phase: str) -> float:
        """The server's CPU over all rounds of `phase`, per request."""
        runs = self.rounds[phase]
        return sum(r.cpu_seconds for r in runs) * 1000 / sum(r.requests for r in runs)

    def latency_ms(self, phase: str, fraction: float) -> float:
        """A percentile of every request's latency in all rounds of `phase`."""
        return percentile([s for r in self.rounds[phase] for s in r.latencies], fraction) * 1000

    def requests(self, phase: str) -> int:
        return sum(r.requests for r in self.rounds[phase])

    def per_second(self, phase: str) -> float:
        return self.requests(phase) / sum(r.wall_seconds for r in self.rounds[phase])


def run_phase(phase: str, server: Server, template: list[Webhook], counts: dict[str, int], concurrency: int) -> Run:
    """One round of one phase against one server; every request is signed before the clock starts."""
    if phase.startswith("voice"):
        batch = [[sign(fresh_voice(template[0]), server.public_url)] for _ in range(counts[phase])]
    else:
        batch = [[sign(w, server.public_url) for w in fresh_call(template)] for _ in range(counts[phase])]
    if phase.endswith("alone"):
        return one_at_a_time(server.pid, server.port, batch, per_step=phase == "calls_alone")
    return concurrently(server.pid, server.port, batch, concurrency)


def idle_cpu_ms_per_s(pid: int, seconds: float = 1.0) -> float:
    """What the server burns doing nothing (pollers, timers), in CPU ms per second."""
    before = task_cpu_ns(pid)
    time.sleep(seconds)
    return (task_cpu_ns(pid) - before) / 1e6 / seconds


def measure(servers: list[Server], template: list[Webhook], args: argparse.Namespace) -> dict[str, Results]:
    """Warm both servers up, then `--rounds` rounds; within a round each phase runs on one server then the
    other (the order alternates), so a change in the machine's background load hits both alike."""
    per_round = {
        phase: max(1, -(-total // args.rounds))
        for phase, total in (
            ("voice_alone", args.requests),
            ("voice_together", args.concurrent_requests),
            ("calls_alone", args.calls),
            ("calls_together", args.concurrent_calls),
        )
    }
    results = {server.app: Results(server.app) for server in servers}
    for server in servers:
        warmup = {"voice_alone": args.warmup, "calls_alone": 3}
        for phase in warmup:
            run_phase(phase, server, template, warmup, args.concurrency)
        results[server.app].idle_cpu_ms_per_s = idle_cpu_ms_per_s(server.pid)
    for round_number in range(args.rounds):
        order = servers if round_number % 2 == 0 else servers[::-1]
        for phase in PHASES:
            for server in order:
                run = run_phase(phase, server, template, per_round, args.concurrency)
                results[server.app].rounds[phase].append(run)
    return results


# --- the report ------------------------------------------------------------------------------------


def spread(value: float, rounds: list[float], digits: int = 2) -> str:
    """'value (min–max over the rounds)'."""
    if len(rounds) < 2:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({min(rounds):.{digits}f}–{max(rounds):.{digits}f})"


ROW = "{:<11} {:<8} {:<24} {:>8}  {:<20} {:<20} {:<22} {:<10}"


def report(database: str, results: dict[str, Results], args: argparse.Namespace, steps: int) -> None:
    """Print the table for one database: each app, then the ratios ivr / minimal."""
    for label, alone, together in (
        ("/twilio/voice", "voice_alone", "voice_together"),
        (f"whole call ({steps} webhooks)", "calls_alone", "calls_together"),
    ):
        values: dict[str, tuple[float, float, float]] = {}
        for app in ("minimal", "ivr"):
            r = results[app]
            values[app] = (r.cpu_ms_per_request(alone), r.latency_ms(together, 0.50), r.latency_ms(together, 0.95))
            print(
                ROW.format(
                    database,
                    app,
                    label,
                    r.requests(alone),
                    spread(values[app][0], [run.cpu_ms_per_request for run in r.rounds[alone]]),
                    spread(values[app][1], [run.latency_ms(0.50) for run in r.rounds[together]], 1),
                    spread(values[app][2], [run.latency_ms(0.95) for run in r.rounds[together]], 1),
                    f"{r.per_second(together):.0f}",
                )
            )
        cpu, p50, p95 = (values["ivr"][i] / values["minimal"][i] for i in range(3))
        verdict = (
            f"CPU {'within' if cpu <= TARGET_CPU else 'OVER'} {TARGET_CPU:g}×, "
            f"p95 {'within' if p95 <= TARGET_P95 else 'OVER'} {TARGET_P95:g}×"
        )
        print(ROW.format(database, "ratio", "ivr / minimal", "", f"{cpu:.2f}×", f"{p50:.2f}×", f"{p95:.2f}×", verdict))
    indent = " " * 12
    step_cpu: dict[str, list[int]] = {}
    for run in results["ivr"].rounds["calls_alone"]:
        for step, values_ns in run.step_cpu_ns.items():
            step_cpu.setdefault(step, []).extend(values_ns)
    print(
        indent
        + "ivr CPU ms per step, one call at a time (median): "
        + ", ".join(f"{step} {statistics.median(v) / 1e6:.2f}" for step, v in step_cpu.items())
    )
    for app in ("minimal", "ivr"):
        latencies: dict[str, list[float]] = {}
        for run in results[app].rounds["calls_together"]:
            for step, seconds in run.step_latencies.items():
                latencies.setdefault(step, []).extend(seconds)
        print(
            indent
            + f"{app} p95 ms per step, {args.concurrency} calls at a time: "
            + ", ".join(f"{step} {percentile(latencies[step], 0.95) * 1000:.0f}" for step in step_cpu)
        )
    print(indent + "idle CPU ms/s: " + ", ".join(f"{app} {results[app].idle_cpu_ms_per_s:.1f}" for app in results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="/twilio/voice one at a time (CPU per request)")
    parser.add_argument(
        "--concurrent-requests",
        type=int,
        default=480,
        help="/twilio/voice requests sent `--concurrency` at a time (latency)",
    )
    parser.add_argument("--calls", type=int, default=30, help="whole calls one at a time (CPU per webhook)")
    parser.add_argument("--concurrent-calls", type=int, default=48, help="whole calls `--concurrency` at a time")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, default=3, help="the counts are split into this many rounds, the apps taking turns"
    )
    parser.add_argument("--warmup", type=int, default=50, help="/twilio/voice requests before measuring")
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
        f"webhook benchmark: {pinning}; gunicorn gthread, {args.threads} threads; {args.rounds} rounds, the apps "
        "taking turns; value over all rounds (min–max of the rounds)"
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
            results = measure([minimal, ours], template, args)
        report(database, results, args, len(template))
    print(f"whole call: {', '.join(w.step for w in template)}; server logs in {workdir}")
    return 0


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
