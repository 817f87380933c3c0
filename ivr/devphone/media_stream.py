"""Twilio Media Streams as the dev phone plays them: `<Start><Stream>` forks the caller's audio to a WebSocket.

Follows Twilio's <Stream> reference and its Media Streams WebSocket messages (unidirectional streams):

* the handshake carries `X-Twilio-Signature` over the stream URL as the TwiML wrote it, with no parameters;
* the messages are `connected`, then `start` (sequenceNumber "1", the stream's `<Parameter>`s as
  customParameters), `media` (20 ms of 8 kHz μ-law, base64; chunk from "1", timestamp in milliseconds
  since the stream started), and `stop` when <Stop><Stream> names it or the call ends. Numbers that
  Twilio sends as strings are strings;
* a refused handshake, a server that closes the socket or one that cannot be reached is recorded on
  the call's `StreamRecord` and changes nothing for the call.

The dev phone streams only while the caller speaks into a <Record> (the message, and the silence of a
recording that times out), paced in real time divided by `speed`; it sends nothing between verbs, where
Twilio would keep sending the line's silence until the stream stops.
"""

from __future__ import annotations

import audioop
import base64
import io
import json
import math
import time
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ivr.devphone.results import StreamEnd, StreamRecord
from ivr.devphone.transport import (
    Transport,
    TransportError,
    WebSocketConnection,
    WebSocketRefused,
    WebSocketTransport,
)

FRAME_SECONDS = 0.02
SAMPLE_RATE = 8000
FRAME_BYTES = int(SAMPLE_RATE * FRAME_SECONDS)  # μ-law: one byte a sample
MULAW_SILENCE = b"\xff"  # μ-law for a zero sample
USER_AGENT = "Twilio.TmeWs/1.0"
TRACKS = {"inbound_track": ["inbound"], "outbound_track": ["outbound"], "both_tracks": ["inbound", "outbound"]}

# Told (stream, StreamEvent, StreamError) for a stream's statusCallback: stream-started / -stopped / -error.
StatusNotice = Callable[[StreamRecord, str, str], None]


def mulaw_frames(wav: bytes) -> list[bytes]:
    """A WAV's audio as Twilio streams it: mono 8 kHz μ-law in 160-byte (20 ms) frames, the last one
    padded with silence."""
    with wave.open(io.BytesIO(wav)) as reader:
        width, channels, rate = reader.getsampwidth(), reader.getnchannels(), reader.getframerate()
        pcm = reader.readframes(reader.getnframes())
    if width == 1:
        pcm = audioop.bias(pcm, 1, -128)  # WAV's 8-bit samples are unsigned
    if width != 2:
        pcm = audioop.lin2lin(pcm, width, 2)
    if channels == 2:
        pcm = audioop.tomono(pcm, 2, 0.5, 0.5)
    elif channels > 2:
        raise ValueError(f"a {channels}-channel WAV cannot be streamed (mono or stereo only)")
    if rate != SAMPLE_RATE:
        pcm, _ = audioop.ratecv(pcm, 2, 1, rate, SAMPLE_RATE, None)
    mulaw = audioop.lin2ulaw(pcm, 2)
    return [mulaw[i : i + FRAME_BYTES].ljust(FRAME_BYTES, MULAW_SILENCE) for i in range(0, len(mulaw), FRAME_BYTES)]


def silence_frames(seconds: float) -> list[bytes]:
    """`seconds` of silence as 20 ms μ-law frames."""
    return [MULAW_SILENCE * FRAME_BYTES] * math.ceil(seconds / FRAME_SECONDS)


@dataclass
class _OpenStream:
    record: StreamRecord
    socket: WebSocketConnection
    started_clock: float
    notify: StatusNotice | None
    sequence: int = 0
    chunk: int = 0
    sends_media: bool = True

    def message(self, event: str, body: Mapping[str, object]) -> bool:
        self.sequence += 1
        message = {
            "event": event,
            "sequenceNumber": str(self.sequence),
            event: body,
            "streamSid": self.record.stream_sid,
        }
        return self.socket.send(json.dumps(message, ensure_ascii=False, separators=(",", ":")))


@dataclass
class CallStreams:
    """The Media Streams of one call: started, fed with the caller's audio, stopped by name or at the end."""

    transport: Transport
    sign: Callable[[str], str]
    account_sid: str
    call_sid: str
    speed: float
    records: list[StreamRecord]
    new_sid: Callable[[], str]
    _open: list[_OpenStream] = field(default_factory=list)

    @property
    def streaming(self) -> bool:
        """Whether an open stream takes the caller's audio (so <Record> runs in real time)."""
        return any(stream.sends_media for stream in self._open)

    def start(
        self,
        url: str,
        name: str,
        track: str,
        parameters: dict[str, str],
        clock: float,
        notify: StatusNotice | None = None,
    ) -> StreamRecord:
        """Open a stream to `url` (as signed) and send `connected` and `start`; a failure is recorded only."""
        record = StreamRecord(name, url, self.new_sid(), track, dict(parameters))
        self.records.append(record)
        headers = {"X-Twilio-Signature": self.sign(url), "User-Agent": USER_AGENT}
        if not url.lower().startswith(("ws://", "wss://")):
            self._failed(record, "failed-to-connect", f"<Stream url={url!r}> is not a ws:// or wss:// URL", notify)
            return record
        if not isinstance(self.transport, WebSocketTransport):
            self._failed(record, "failed-to-connect", f"{type(self.transport).__name__} cannot open WebSockets", notify)
            return record
        try:
            socket = self.transport.open_websocket(url, headers)
        except WebSocketRefused as exc:
            record.http_status = exc.status
            self._failed(record, "refused", str(exc), notify)
            return record
        except TransportError as exc:
            self._failed(record, "failed-to-connect", str(exc), notify)
            return record
        record.connected_to = socket.url
        stream = _OpenStream(record, socket, clock, notify, sends_media="inbound" in TRACKS[track])
        self._open.append(stream)
        start = {
            "accountSid": self.account_sid,
            "streamSid": record.stream_sid,
            "callSid": self.call_sid,
            "tracks": TRACKS[track],
            "customParameters": record.parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": SAMPLE_RATE, "channels": 1},
        }
        connected = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        if socket.send(json.dumps(connected, separators=(",", ":"))) and stream.message("start", start):
            if notify is not None:
                notify(record, "stream-started", "")
        else:
            self._closed_by_server(stream)
        return record

    def send_audio(self, frames: Sequence[bytes], clock: float) -> None:
        """Send `frames` to every open inbound stream, one each 20 ms / speed (the call's clock at the first
        frame is `clock`); returns after the last frame was sent."""
        interval = FRAME_SECONDS / self.speed
        began = time.monotonic()
        for index, frame in enumerate(frames):
            # A phone sends each frame once its 20 ms have been spoken.
            delay = began + (index + 1) * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            payload = base64.b64encode(frame).decode("ascii")
            for stream in [stream for stream in self._open if stream.sends_media]:
                stream.chunk += 1
                media = {
                    "track": "inbound",
                    "chunk": str(stream.chunk),
                    "timestamp": str(round((clock - stream.started_clock) * 1000) + index * 20),
                    "payload": payload,
                }
                if stream.message("media", media):
                    stream.record.frames_sent += 1
                else:
                    self._closed_by_server(stream)

    def stop(self, name: str) -> bool:
        """<Stop><Stream name>: stop the open stream of that name ('' stops every open stream); False when
        none matched."""
        matched = [stream for stream in self._open if not name or stream.record.name == name]
        for stream in matched:
            self._finish(stream, "stopped")
        return bool(matched)

    def stop_all(self) -> None:
        """The call ended: every open stream gets `stop` and is closed."""
        for stream in list(self._open):
            self._finish(stream, "call-ended")

    def is_open(self, name: str) -> bool:
        return any(stream.record.name == name for stream in self._open)

    def _finish(self, stream: _OpenStream, ended: StreamEnd) -> None:
        self._open.remove(stream)
        if stream.message("stop", {"accountSid": self.account_sid, "callSid": self.call_sid}):
            stream.record.stop_sent = True
            stream.record.ended = ended
            stream.socket.close()
            if stream.notify is not None:
                stream.notify(stream.record, "stream-stopped", "")
        else:
            self._closed_by_server(stream, already_removed=True)

    def _closed_by_server(self, stream: _OpenStream, already_removed: bool = False) -> None:
        if not already_removed:
            self._open.remove(stream)
        socket = stream.socket
        code = f"close code {socket.close_code}" if socket.close_code is not None else "no close code"
        reason = f": {socket.close_reason}" if socket.close_reason else ""
        self._failed(stream.record, "closed-by-server", f"{code}{reason}", stream.notify)

    def _failed(self, record: StreamRecord, ended: StreamEnd, detail: str, notify: StatusNotice | None) -> None:
        record.ended = ended
        record.detail = detail
        if notify is not None:
            notify(record, "stream-error", detail)
