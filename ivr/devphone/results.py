"""What an emulated call reports: every webhook exchanged (`Exchange`), every Media Stream opened
(`StreamRecord`) and the whole call (`CallResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ivr.devphone.callers import Heard, Step


@dataclass
class Exchange:
    """One webhook: what was sent and what came back.

    `kind` is one of voice, gather, record, dial, redirect (TwiML requests) or call-status,
    recording-status, dial-status (callbacks). With `retry_webhooks`, `replies_identical` tells
    whether the retried request got the same answer.
    """

    kind: str
    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    status: int
    body: str
    content_type: str = ""
    replies_identical: bool | None = None
    seconds: float = 0.0  # how long the server took to answer (the last delivery, with retries)


StreamEnd = Literal["open", "stopped", "call-ended", "refused", "closed-by-server", "failed-to-connect"]


@dataclass
class StreamRecord:
    """One <Start><Stream>: what was asked for and how it went.

    `ended` is `stopped` (by <Stop><Stream>), `call-ended` (the call ended with the stream open; as on
    Twilio, `stop` was sent then), `refused` (the handshake got HTTP `http_status`), `closed-by-server`
    (the server closed the socket; `detail` says how), `failed-to-connect`, or `open` while the call runs.
    None of these changes the call, as on Twilio. `url` is the stream URL as signed (the TwiML's, resolved),
    `connected_to` where the transport really connected.
    """

    name: str
    url: str
    stream_sid: str
    track: str
    parameters: dict[str, str]
    connected_to: str = ""
    frames_sent: int = 0
    ended: StreamEnd = "open"
    http_status: int | None = None
    detail: str = ""
    stop_sent: bool = False

    @property
    def seconds_sent(self) -> float:
        """Audio sent, in seconds (20 ms a frame)."""
        return self.frames_sent * 0.02


@dataclass
class CallResult:
    """Everything observable about one emulated call."""

    call_sid: str
    from_: str
    to: str
    said: list[str] = field(default_factory=list)
    heard: list[Heard] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    requests: list[Exchange] = field(default_factory=list)
    recordings: dict[str, Path | None] = field(default_factory=dict)
    ended_by: Literal["caller", "twilio"] = "twilio"
    duration: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unused_steps: list[Step] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No application error, script mismatch or loop guard."""
        return not self.errors

    def transcript(self) -> str:
        """What the line said, one prompt per line."""
        return "\n".join(self.said)

    def requests_of(self, kind: str) -> list[Exchange]:
        return [exchange for exchange in self.requests if exchange.kind == kind]

    def last(self, kind: str) -> Exchange:
        """The last webhook of `kind`; AssertionError (with the call's story) when there is none."""
        found = self.requests_of(kind)
        if not found:
            raise AssertionError(f"no {kind!r} request in this call:\n{self.describe()}")
        return found[-1]

    def stream(self, name: str) -> StreamRecord:
        """The last stream started with `name` ('' for an unnamed one); AssertionError when there is none."""
        found = [stream for stream in self.streams if stream.name == name]
        if not found:
            raise AssertionError(f"no stream named {name!r} in this call:\n{self.describe()}")
        return found[-1]

    def describe(self) -> str:
        """A readable account of the call for assertion messages."""
        lines = [f"call {self.call_sid} from {self.from_}, ended by {self.ended_by} after {self.duration}s"]
        lines += [f"  {e.kind:17} {e.method} {e.url} -> {e.status}" for e in self.requests]
        for stream in self.streams:
            status = f" HTTP {stream.http_status}" if stream.http_status else ""
            detail = f" ({stream.detail})" if stream.detail else ""
            lines.append(
                f"  stream {stream.name or '(unnamed)'} {stream.url}: {stream.frames_sent} frames, "
                f"{stream.ended}{status}{detail}"
            )
        lines += [f"  said: {text}" for text in self.said]
        lines += [f"  error: {text}" for text in self.errors]
        lines += [f"  warning: {text}" for text in self.warnings]
        if self.unused_steps:
            lines.append(f"  unused script steps: {self.unused_steps!r}")
        return "\n".join(lines)

    def raise_for_errors(self) -> CallResult:
        """AssertionError describing the call when it had errors; the result otherwise."""
        if self.errors:
            raise AssertionError(self.describe())
        return self
