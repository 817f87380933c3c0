"""`ivr call`: ring the running server from the terminal, as Twilio would for a real caller."""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

import click

from ivr.devphone.audio import write_tone_wav
from ivr.devphone.callers import (
    HANGUP,
    SILENCE,
    Caller,
    CallerScript,
    DialAnswer,
    DialOutcome,
    DialRequest,
    DialStatus,
    GatherAnswer,
    GatherRequest,
    Heard,
    InteractiveCaller,
    Message,
    RecordAnswer,
    RecordRequest,
    Speech,
    Step,
)
from ivr.devphone.emulator import OutboundOutcome, TwilioEmulator
from ivr.devphone.recording_server import RecordingServer
from ivr.devphone.results import CallResult
from ivr.devphone.ringing import Keyboard, answer_outbound_calls
from ivr.devphone.transport import HttpTransport

if TYPE_CHECKING:
    from ivr.cli_state import CliState
    from ivr.config import Settings

DIAL_OUTCOMES = ("completed", "no-answer", "busy", "failed")
OUTBOUND_OUTCOMES = DIAL_OUTCOMES  # the same four ends of a ringing phone
DEFAULT_API_PORT = 5055
KEYS = set("0123456789*#")


def parse_keys(value: str) -> list[Step]:
    """`"1,3*2*501#,,h"` → ["1", "3*2*501#", SILENCE, HANGUP]: empty is silence, `h` hangs up."""
    steps: list[Step] = []
    for item in (part.strip() for part in value.split(",")):
        if item == "":
            steps.append(SILENCE)
        elif item.lower() in ("h", "hangup"):
            steps.append(HANGUP)
        elif set(item) <= KEYS:
            steps.append(item)
        else:
            raise click.BadParameter(f"{item!r} is not keys (0-9 * #), empty (silence) or h (hang up)")
    return steps


def espeak_speaker(echo: Callable[[str], None]) -> Callable[[str], None] | None:
    """A function speaking Mandarin through espeak-ng, or None (with a message) when it is missing."""
    program = shutil.which("espeak-ng")
    if program is None:
        echo("--speak: espeak-ng is not installed (apt-get install espeak-ng); prompts are shown as text only")
        return None

    def speak(text: str) -> None:
        subprocess.run([program, "-v", "cmn", text], check=False, capture_output=True)

    return speak


class TerminalPhone(Caller):
    """Shows what the line says and what the caller does, around another caller that decides."""

    def __init__(self, inner: Caller, speak: Callable[[str], None] | None = None) -> None:
        self.inner = inner
        self.speak = speak

    def hear(self, heard: Heard) -> None:
        if heard.kind == "say":
            click.echo(f"☎ {heard.text}")
            if self.speak is not None:
                self.speak(heard.text)
        elif heard.kind == "play":
            click.echo(f"♪ play {heard.url}")
        elif heard.kind == "pause":
            click.echo(f"… pause {heard.seconds:g}s")
        else:
            click.echo("♪ beep")
        self.inner.hear(heard)

    def answer_gather(self, request: GatherRequest) -> GatherAnswer:
        answer = self.inner.answer_gather(request)
        if answer is SILENCE:
            click.echo(f"⌨ (silence, {request.timeout}s)")
        elif answer is HANGUP:
            click.echo("✆ hang up")
        elif isinstance(answer, Speech):
            click.echo(f"🗣 {answer.text}")
        else:
            click.echo(f"⌨ {answer}")
        return answer

    def answer_record(self, request: RecordRequest) -> RecordAnswer:
        answer = self.inner.answer_record(request)
        if isinstance(answer, Message):
            click.echo(f"● speaking {answer.wav}, then {answer.finish}")
        elif answer is SILENCE:
            click.echo("● (says nothing)")
        else:
            click.echo("✆ hang up")
        return answer

    def answer_dial(self, request: DialRequest) -> DialAnswer:
        answer = self.inner.answer_dial(request)
        if isinstance(answer, DialOutcome):
            click.echo(f"↪ dialling {', '.join(request.numbers)}: {answer.status}")
        else:
            click.echo(f"↪ dialling {', '.join(request.numbers)}: caller hangs up while it rings")
        return answer

    def unused_steps(self) -> list[Step]:
        return self.inner.unused_steps()


def summary(result: CallResult, recordings: RecordingServer) -> list[str]:
    """The lines printed after the call."""
    counts: dict[str, int] = {}
    for exchange in result.requests:
        counts[exchange.kind] = counts.get(exchange.kind, 0) + 1
    lines = [
        f"— call {result.call_sid} ended by {result.ended_by} after {result.duration}s",
        f"  webhooks: {len(result.requests)} (" + ", ".join(f"{k} {n}" for k, n in counts.items()) + ")",
    ]
    for sid in result.recordings:
        lines.append(f"  recording {sid}: {recordings.url_for(sid)}")
    for stream in result.streams:
        how = f"refused (HTTP {stream.http_status})" if stream.ended == "refused" else stream.ended
        detail = f": {stream.detail}" if stream.detail and stream.ended != "refused" else ""
        lines.append(
            f"  stream {stream.name or stream.stream_sid} to {stream.connected_to or stream.url}: "
            f"{stream.frames_sent} frames ({stream.seconds_sent:g}s of audio), {how}{detail}"
        )
    lines += [f"  warning: {text}" for text in result.warnings]
    lines += [f"  error: {text}" for text in result.errors]
    if result.unused_steps:
        lines.append(f"  keys not used: {result.unused_steps!r}")
    return lines


def wait_for_fetches(recordings: RecordingServer, sids: list[str], seconds: float) -> None:
    """Keep serving until every recording was fetched at least once, or `seconds` passed."""
    deadline = time.monotonic() + seconds
    pending = [sid for sid in sids if recordings.fetch_count(sid) == 0]
    if not pending or seconds <= 0:
        return
    click.echo(f"serving {len(pending)} recording(s) until fetched (up to {seconds:g}s; Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        while pending and time.monotonic() < deadline:
            time.sleep(0.2)
            pending = [sid for sid in pending if recordings.fetch_count(sid) == 0]
    if pending:
        click.echo(f"never fetched: {', '.join(pending)}")


def parse_stream_speed(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """`--stream-speed`: a factor above 0, or `max` (as fast as possible, math.inf)."""
    if value.strip().lower() == "max":
        return math.inf
    try:
        speed = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number or 'max'") from None
    if not 0 < speed < math.inf:
        raise click.BadParameter(f"{value!r} must be above 0 (or 'max')")
    return speed


def outbound_api_port(settings: Settings) -> int:
    """Where the line is expected to place its calls: the port of IVR_TWILIO_API_URL when that is this
    machine's http (as .env may set it for both the server and the dev phone), else DEFAULT_API_PORT."""
    parts = urlsplit(settings.twilio_api_url)
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost") and parts.port:
        return parts.port
    return DEFAULT_API_PORT


def _ask(prompt: str) -> str:
    """One line from the terminal; Ctrl-C / Ctrl-D hang up (EOFError) instead of aborting the command."""
    try:
        return str(click.prompt(prompt, default="", show_default=False))
    except click.Abort as exc:
        raise EOFError from exc


@click.command("call")
@click.option("--server", default="http://127.0.0.1:5000", show_default=True, help="Where the app is running.")
@click.option("--from", "from_", default="+8613912345678", show_default=True, help="The caller's number.")
@click.option("--to", default="+861062345678", show_default=True, help="The line's number.")
@click.option("--keys", help='Scripted caller, e.g. "1,3*2*501#,1" (empty = silence, h = hang up).')
@click.option(
    "--message",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="WAV spoken at <Record> (default: a 2-second tone).",
)
@click.option(
    "--dial-outcome",
    type=click.Choice(DIAL_OUTCOMES),
    help="What happens at <Dial> (scripted default: completed; interactive: asked).",
)
@click.option("--speak", is_flag=True, help="Speak prompts with espeak-ng (Mandarin voice).")
@click.option(
    "--stream-speed",
    metavar="FACTOR|max",
    default="1",
    callback=parse_stream_speed,
    show_default=True,
    help="When the line asks for a Media Stream (<Start><Stream>), send the message audio over it this many "
    "times faster than real time; 'max' = as fast as possible. The <Record> action follows the last frame.",
)
@click.option(
    "--linger",
    type=float,
    default=60.0,
    show_default=True,
    help="After the call, keep serving recordings until fetched, up to this many seconds.",
)
@click.option(
    "--answer-outbound",
    is_flag=True,
    help="Instead of calling the line, wait for the calls it places (回访) and ring this terminal (see above).",
)
@click.option(
    "--api-port",
    type=click.IntRange(1, 65535),
    help=f"Port on 127.0.0.1 of the dev phone's Twilio REST API (Calls.json, recordings). Default with "
    f"--answer-outbound: the port of IVR_TWILIO_API_URL when it is http://127.0.0.1:PORT, else {DEFAULT_API_PORT}; "
    "otherwise a free port.",
)
@click.option(
    "--ring-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="--answer-outbound: how long a call rings before it is no-answer.",
)
@click.option(
    "--outbound-outcome",
    type=click.Choice(OUTBOUND_OUTCOMES),
    help="--answer-outbound: what happens to every call without ringing (completed = answered; "
    "default: asked at the ring, or answered by the --keys script).",
)
@click.option(
    "--calls",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="--answer-outbound: stop after this many calls (0: at Ctrl-C, or when the input ends).",
)
@click.pass_obj
def call(
    state: CliState,
    server: str,
    from_: str,
    to: str,
    keys: str | None,
    message: Path | None,
    dial_outcome: str | None,
    speak: bool,
    stream_speed: float,
    linger: float,
    answer_outbound: bool,
    api_port: int | None,
    ring_seconds: float,
    outbound_outcome: str | None,
    calls: int,
) -> None:
    """Place a call to the running server through the Twilio emulator (the dev phone). Outside production
    it signs with the development server's generated secrets (IVR_ENV defaults to development here).
    Media Streams the line starts are opened to the same server (wss://PUBLIC_HOST/... goes to --server).

    With --answer-outbound it answers the calls the line places instead (follow-ups 回访). The line places
    them through Twilio's REST API at IVR_TWILIO_API_URL: run the server with that set to the dev phone's
    (IVR_TWILIO_API_URL=http://127.0.0.1:5055 ./scripts/run, or in .env, which this command reads too), and
    the dev phone serves POST Calls.json there. Each call rings here (来电 …: Enter answers and the call runs
    as an inbound one does, n refuses it as busy, no reaction within --ring-seconds is no-answer); with --keys
    a scripted resident answers every call. Calls are taken one at a time, in the order placed.
    """
    settings = state.dev_settings
    steps = parse_keys(keys) if keys is not None else None
    speaker = espeak_speaker(click.echo) if speak else None
    port = api_port if api_port is not None else (outbound_api_port(settings) if answer_outbound else 0)
    with contextlib.ExitStack() as stack:
        if message is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="devphone-")))
            message = write_tone_wav(folder / "message.wav")
        outcome = DialOutcome(cast(DialStatus, dial_outcome)) if dial_outcome else None
        keyboard = Keyboard() if answer_outbound and steps is None else None
        spoken = Message(message)

        def phone() -> TerminalPhone:
            """Who is on the phone for one call: the script, or the person at the keyboard."""
            inner: Caller
            if steps is not None:
                inner = CallerScript(steps, message=spoken, dial_outcome=outcome or DialOutcome())
            else:
                inner = InteractiveCaller(message, ask=keyboard.ask if keyboard else _ask, dial_outcome=outcome)
            return TerminalPhone(inner, speaker)

        try:
            recordings = stack.enter_context(
                RecordingServer(settings.twilio_account_sid, settings.twilio_auth_token, port=port)
            )
        except OSError as exc:
            raise click.ClickException(f"cannot listen on 127.0.0.1:{port} ({exc}): choose another --api-port") from exc
        emulator = TwilioEmulator(
            HttpTransport(server, settings.public_url),
            settings.public_url,
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            recordings,
            stream_speed=stream_speed,
        )
        if answer_outbound:
            click.echo(
                f"answering the line's outbound calls to {settings.public_url} (via {server}): the server must run "
                f"with IVR_TWILIO_API_URL={recordings.base_url} (Ctrl-C to stop)"
            )
            results: list[CallResult] = []
            with contextlib.suppress(KeyboardInterrupt):
                for result in answer_outbound_calls(
                    emulator,
                    recordings,
                    phone,
                    keyboard=keyboard,
                    outcome=cast(OutboundOutcome | None, outbound_outcome),
                    ring_seconds=ring_seconds,
                    calls=calls,
                ):
                    results.append(result)
                    for line in summary(result, recordings):
                        click.echo(line)
        else:
            click.echo(f"calling {settings.public_url} (via {server}) from {from_}")
            results = [emulator.call(phone(), from_=from_, to=to)]
            for line in summary(results[0], recordings):
                click.echo(line)
        wait_for_fetches(recordings, [sid for result in results for sid in result.recordings], linger)
    errors = [error for result in results for error in result.errors]
    if errors:
        raise click.ClickException(f"the call had {len(errors)} error(s): {errors[0]}")
