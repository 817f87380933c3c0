"""Twilio's side of a voice call: request TwiML, follow it verb by verb, post the callbacks. An inbound call
starts at the number's voice URL (`TwilioEmulator.call`); an outbound one the line placed with `POST Calls.json`
(kept by the recording server) starts at its Url with `Direction=outbound-api` and `AnsweredBy`, or is never
answered, and reports to its StatusCallback (`TwilioEmulator.answer_outbound`).

The emulator is generic: it knows TwiML, not our menus. A *caller* (`ivr.devphone.callers`) decides
what happens at each point where a real caller would act (keys at <Gather>, a message at <Record>,
the far end at <Dial>); the call's story comes back as a `CallResult` (`ivr.devphone.results`).
`TwilioEmulator` holds the phone number's set-up; each call runs in a `_CallRun`, verb by verb.

Behaviour follows Twilio's TwiML Voice reference:

* every webhook is a form-encoded POST (or GET when `method="GET"`) signed with `X-Twilio-Signature`
  over the public URL, with `I-Twilio-Idempotency-Token` and `User-Agent: TwilioProxy/1.1`;
* a non-2xx reply, an unreachable server or a document that is not `<Response>` TwiML is an
  "application error": Twilio apologises and hangs up, so the call ends there;
* <Gather> posts `Digits` (and `FinishedOnKey`) to its action; with no input it falls through to the
  next verb unless `actionOnEmptyResult="true"`;
* <Record> posts `RecordingUrl` (no extension), `RecordingSid`, `RecordingDuration` and `Digits` (the
  key that ended it, or `hangup`); an empty recording requests nothing and falls through; after a
  hang-up the action is still requested but its reply is ignored;
* <Dial> posts `DialCallStatus`, `DialCallSid`, `DialCallDuration` (when answered) and the recording
  fields when it recorded; without an action it falls through to the next verb;
* when the document runs out the call ends; the number's status callback then gets
  `CallStatus=completed` with `CallDuration`;
* <Start><Stream> opens a unidirectional Media Stream and the document carries on; the caller's audio
  at <Record> goes to every open stream, and <Stop><Stream> or the end of the call sends `stop`
  (`ivr.devphone.media_stream`). A stream that fails changes nothing for the call.

Time is virtual: prompts, pauses, timeouts and recordings advance a clock, so `CallDuration` and
timestamps are plausible without the test waiting. The exception is a <Record> with a stream open:
the audio is streamed in real time divided by `stream_speed`, and the action is requested after the
last frame, when the caller presses the key.
"""

from __future__ import annotations

import math
import secrets
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Literal, NoReturn
from urllib.parse import urlencode, urljoin

from twilio.request_validator import RequestValidator

from ivr.devphone.audio import Audio, read_audio, silent_audio, truncated
from ivr.devphone.callers import (
    HANGUP,
    Caller,
    CallerScript,
    DialOutcome,
    DialRequest,
    GatherRequest,
    Heard,
    Message,
    RecordRequest,
    ScriptMismatch,
    Speech,
    Step,
)
from ivr.devphone.media_stream import TRACKS, CallStreams, StatusNotice, mulaw_frames, silence_frames
from ivr.devphone.recording_server import PlacedCall, RecordingServer
from ivr.devphone.results import CallResult, Exchange, StreamRecord
from ivr.devphone.transport import Reply, Transport, TransportError

API_VERSION = "2010-04-01"
USER_AGENT = "TwilioProxy/1.1"
APPLICATION_ERROR_PROMPT = "We are sorry, an application error has occurred. Goodbye."


@dataclass(frozen=True)
class SharedKey:
    """Sign with a Webhooks SharedKey instead of the auth token (sends X-Twilio-Webhooks-Signature-Settings)."""

    key: str
    secret: str
    algorithm: str = "HMAC_SHA256"


RecordingCallbackTiming = Literal["after-action", "before-action", "end-of-call"]
OutboundOutcome = Literal["completed", "no-answer", "busy", "failed"]


class TwilioEmulator:
    """Plays Twilio for inbound calls to one phone number whose voice webhook is `voice_path`.

    `recording_callback_timing` places recording status callbacks after the verb's action request
    (the usual order), before it (out of order, as Twilio may deliver them), or after the call's
    final status callback. `retry_webhooks` sends every webhook twice with the same idempotency
    token, as Twilio does when it retries, and uses the second reply.

    `stream_speed` paces Media Streams: 1.0 sends the caller's audio in real time (20 ms a frame),
    20.0 twenty times faster, `math.inf` as fast as the socket takes it.
    """

    def __init__(
        self,
        transport: Transport,
        public_url: str,
        account_sid: str,
        auth_token: str,
        recording_server: RecordingServer | None,
        voice_path: str = "/twilio/voice",
        status_path: str | None = "/twilio/status",
        *,
        retry_webhooks: bool = False,
        recording_callback_timing: RecordingCallbackTiming = "after-action",
        max_requests: int = 200,
        shared_key: SharedKey | None = None,
        real_pauses_up_to: float = 0.0,
        stream_speed: float = 1.0,
    ) -> None:
        if not stream_speed > 0:
            raise ValueError(f"stream_speed must be above 0 (math.inf: as fast as possible), not {stream_speed!r}")
        self.transport = transport
        self.public_url = public_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.recording_server = recording_server
        self.voice_path = voice_path
        self.status_path = status_path
        self.retry_webhooks = retry_webhooks
        self.recording_callback_timing = recording_callback_timing
        self.max_requests = max_requests
        self.shared_key = shared_key
        # Pauses up to this length really wait (as on a phone), so a server polling with
        # <Pause>+<Redirect> gives its background work real time; longer ones stay virtual.
        self.real_pauses_up_to = real_pauses_up_to
        self.stream_speed = stream_speed

    def call(
        self,
        caller: Caller | Sequence[Step],
        from_: str = "+8613912345678",
        to: str = "+861062345678",
        call_sid: str | None = None,
    ) -> CallResult:
        """Place one inbound call and follow it to the end. A list of steps becomes a `CallerScript`."""
        if not isinstance(caller, Caller):
            caller = CallerScript(caller)
        run = _CallRun(self, caller, from_, to, call_sid or new_sid("CA"))
        return run.run()

    def answer_outbound(
        self,
        placed: PlacedCall,
        caller: Caller | Sequence[Step] = (),
        *,
        answered_by: str = "human",
        outcome: OutboundOutcome = "completed",
        ring_seconds: int = 5,
    ) -> CallResult:
        """Play Twilio for a call the line placed (`POST Calls.json`, kept by the recording server): the
        callee answers (`outcome="completed"`: its Url is requested with `Direction=outbound-api` and, with
        machine detection, `AnsweredBy` — `human`, `machine_start`, `fax`…) and `caller` acts as on an inbound
        call; or it does not (`no-answer`, `busy`, `failed`) and only the status callback says so."""
        if not isinstance(caller, Caller):
            caller = CallerScript(caller)
        detected = answered_by if placed.machine_detection else None
        run = _CallRun(
            self,
            caller,
            placed.from_,
            placed.to,
            placed.sid,
            direction="outbound-api",
            first=_Fetch("answer", placed.url, placed.method, {"AnsweredBy": detected} if detected else {}),
            status_callback=(placed.status_callback, placed.status_callback_method, placed.status_callback_events)
            if placed.status_callback
            else None,
            answered_by=detected,
        )
        return run.run_outbound(outcome, ring_seconds)

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """X-Twilio-Signature for a request to `url` with form `params`."""
        if self.shared_key is not None:
            return str(
                RequestValidator(self.shared_key.secret).compute_signature(url, dict(params), self.shared_key.algorithm)
            )
        return str(RequestValidator(self.auth_token).compute_signature(url, dict(params)))


def new_sid(prefix: str) -> str:
    """A Twilio-style SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def _country(number: str) -> str:
    for prefix, country in (("+86", "CN"), ("+852", "HK"), ("+1", "US"), ("+44", "GB")):
        if number.startswith(prefix):
            return country
    return ""


class _CallEnded(Exception):
    def __init__(self, by: Literal["caller", "twilio"]) -> None:
        super().__init__(by)
        self.by: Literal["caller", "twilio"] = by


@dataclass
class _Fetch:
    """The next TwiML document to request."""

    kind: str
    url: str
    method: str
    params: dict[str, str]
    caller_gone: bool = False
    # A callback to deliver right after this request was made (a recording status callback).
    after: Callable[[], None] | None = None


class _CallRun:
    """The state of one call while it runs."""

    def __init__(
        self,
        emulator: TwilioEmulator,
        caller: Caller,
        from_: str,
        to: str,
        call_sid: str,
        *,
        direction: str = "inbound",
        first: _Fetch | None = None,
        status_callback: tuple[str, str, tuple[str, ...]] | None = None,
        answered_by: str | None = None,
    ) -> None:
        self.emulator = emulator
        self.direction = direction
        # An inbound call starts at the number's voice URL and reports to its status URL; an outbound call at
        # its Url, reporting to its StatusCallback (the events asked for).
        self.first = first or _Fetch("voice", emulator.public_url + emulator.voice_path, "POST", {})
        self.status_callback = status_callback
        self.answered_by = answered_by
        self.caller = caller
        self.from_ = from_
        self.to = to
        self.call_sid = call_sid
        self.started = datetime.now(UTC)
        self.clock = 0.0
        self.status = "ringing"
        self.document_url = self.first.url
        self.twiml_requests = 0
        self.deferred: list[Callable[[], None]] = []
        self.result = CallResult(call_sid=call_sid, from_=from_, to=to)
        self.streams = CallStreams(
            emulator.transport,
            lambda url: emulator.sign(url, {}),
            emulator.account_sid,
            call_sid,
            emulator.stream_speed,
            self.result.streams,
            lambda: new_sid("MZ"),
        )

    # -- running ------------------------------------------------------------------------------

    def run_outbound(self, outcome: OutboundOutcome, ring_seconds: int) -> CallResult:
        """An outbound call: it rings; answered, it runs as an inbound call does; otherwise it ends there."""
        self.status = "queued"
        self.post_progress("initiated", "initiated")
        self.status = "ringing"
        self.post_progress("ringing", "ringing")
        if outcome != "completed":
            self.clock += ring_seconds if outcome == "no-answer" else 0
            self.status = outcome
            self.result.ended_by = "twilio"
            self.post_call_status()
            self.result.unused_steps = self.caller.unused_steps()
            return self.result
        self.clock += ring_seconds
        self.status = "in-progress"
        self.post_progress("answered", "in-progress")
        self.clock = 0.0  # CallDuration counts from the answer
        return self.run()

    def run(self) -> CallResult:
        next_fetch: _Fetch | None = self.first
        try:
            while next_fetch is not None:
                document_url, root = self.fetch(next_fetch)
                self.status = "in-progress"
                next_fetch = self.execute(root, document_url)
            raise _CallEnded("twilio")
        except _CallEnded as ended:
            self.result.ended_by = ended.by
        except ScriptMismatch as exc:
            self.result.errors.append(str(exc))
            self.result.ended_by = "caller"
        finally:
            # The call is over, however it ended: open streams get `stop`, as on Twilio.
            self.streams.stop_all()
        self.status = "completed"
        self.result.duration = math.ceil(self.clock)
        self.post_call_status()
        for deliver in self.deferred:
            deliver()
        self.result.unused_steps = self.caller.unused_steps()
        return self.result

    def now(self) -> datetime:
        return self.started + timedelta(seconds=self.clock)

    def timestamp(self) -> str:
        return format_datetime(self.now())

    def call_params(self) -> dict[str, str]:
        """The parameters Twilio sends with every TwiML request of an inbound call."""
        from_country, to_country = _country(self.from_), _country(self.to)
        params = {
            "AccountSid": self.emulator.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": self.call_sid,
            "CallStatus": self.status,
            "Direction": self.direction,
            "From": self.from_,
            "To": self.to,
            "Caller": self.from_,
            "Called": self.to,
        }
        for prefix, country in (
            ("From", from_country),
            ("Caller", from_country),
            ("To", to_country),
            ("Called", to_country),
        ):
            params.update({f"{prefix}City": "", f"{prefix}State": "", f"{prefix}Zip": "", f"{prefix}Country": country})
        return params

    # -- webhooks -----------------------------------------------------------------------------

    def send(self, kind: str, method: str, url: str, params: Mapping[str, str]) -> Reply:
        """Sign and deliver one webhook (twice with `retry_webhooks`), and log it."""
        method = method.upper()
        body_params = dict(params)
        if method == "GET":
            query = urlencode(body_params)
            url = url + ("&" if "?" in url else "?") + query if query else url
            body_params = {}
        headers = {
            "X-Twilio-Signature": self.emulator.sign(url, body_params),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": USER_AGENT,
        }
        if self.emulator.shared_key is not None:
            key = self.emulator.shared_key
            headers["X-Twilio-Webhooks-Signature-Settings"] = f"key={key.key},algorithm={key.algorithm}"
        started = time.monotonic()
        reply = self._deliver(method, url, body_params, headers)
        identical = None
        if self.emulator.retry_webhooks:
            started = time.monotonic()
            retry = self._deliver(method, url, body_params, headers)
            identical = (retry.status, retry.body) == (reply.status, reply.body)
            reply = retry
        self.result.requests.append(
            Exchange(
                kind,
                method,
                url,
                body_params,
                headers,
                reply.status,
                reply.body,
                reply.content_type,
                identical,
                time.monotonic() - started,
            )
        )
        return reply

    def _deliver(self, method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        try:
            return self.emulator.transport.request(method, url, params, headers)
        except TransportError as exc:
            return Reply(0, str(exc), "")

    def fetch(self, request: _Fetch) -> tuple[str, ET.Element]:
        """Request a TwiML document; an application error ends the call."""
        self.twiml_requests += 1
        if self.twiml_requests > self.emulator.max_requests:
            self.result.errors.append(
                f"loop guard: more than {self.emulator.max_requests} TwiML requests in one call "
                f"(last: {request.method} {request.url})"
            )
            raise _CallEnded("twilio")
        params = {**self.call_params(), **request.params}
        reply = self.send(request.kind, request.method, request.url, params)
        if request.after is not None:
            request.after()
        if request.caller_gone:
            raise _CallEnded("caller")
        if not reply.ok:
            detail = f"HTTP {reply.status}" if reply.status else reply.body
            self.application_error(f"11200 HTTP retrieval failure: {request.method} {request.url}: {detail}")
        try:
            root = ET.fromstring(reply.body)
        except ET.ParseError as exc:
            self.application_error(f"12100 document parse failure at {request.url}: {exc}")
        if root.tag != "Response":
            self.application_error(f"12100 document parse failure at {request.url}: root is <{root.tag}>")
        return request.url, root

    def application_error(self, message: str) -> NoReturn:
        self.result.errors.append(message)
        self.hear(Heard("say", APPLICATION_ERROR_PROMPT, "en-US"), record=False)
        raise _CallEnded("twilio")

    def hear(self, heard: Heard, record: bool = True) -> None:
        self.result.heard.append(heard)
        if heard.kind == "say" and record:
            self.result.said.append(heard.text)
        self.caller.hear(heard)

    # -- verbs --------------------------------------------------------------------------------

    def execute(self, root: ET.Element, document_url: str) -> _Fetch | None:
        """Run a document's verbs; return the next document to fetch, or None when it runs out."""
        self.document_url = document_url
        for verb in root:
            handler = getattr(self, f"verb_{verb.tag.lower()}", None)
            if handler is None:
                self.application_error(f"12200 <{verb.tag}> is not a voice verb the dev phone emulates")
            next_fetch: _Fetch | None = handler(verb, document_url)
            if next_fetch is not None:
                return next_fetch
        return None

    def resolve(self, document_url: str, target: str | None) -> str:
        return urljoin(document_url, target.strip()) if target and target.strip() else document_url

    def verb_say(self, verb: ET.Element, document_url: str) -> None:
        text = "".join(verb.itertext()).strip()
        for _ in range(max(int(verb.get("loop", "1")), 1)):
            self.hear(Heard("say", text, verb.get("language", "en-US"), verb.get("voice", "")))
            # A rough speaking rate: ~4 Chinese characters a second.
            self.clock += max(len(text) * 0.25, 0.5)

    def verb_play(self, verb: ET.Element, document_url: str) -> None:
        url = self.resolve(document_url, verb.text)
        for _ in range(max(int(verb.get("loop", "1")), 1)):
            self.hear(Heard("play", url=url))
            self.clock += 2

    def verb_pause(self, verb: ET.Element, document_url: str) -> None:
        seconds = float(verb.get("length", "1"))
        self.hear(Heard("pause", seconds=seconds))
        self.clock += seconds
        if 0 < seconds <= self.emulator.real_pauses_up_to:
            time.sleep(seconds)

    def verb_start(self, verb: ET.Element, document_url: str) -> None:
        for noun in verb:
            if noun.tag != "Stream":
                self.application_error(f"12200 <Start><{noun.tag}> is not emulated by the dev phone")
            self.start_stream(noun, document_url)

    def start_stream(self, noun: ET.Element, document_url: str) -> None:
        """<Start><Stream>: open the stream (a failure is only recorded) and carry on with the document."""
        name = noun.get("name", "")
        if name and self.streams.is_open(name):
            self.result.warnings.append(f"<Start><Stream name={name!r}>: a stream of that name is already open")
            return
        parameters: dict[str, str] = {}
        for child in noun:
            if child.tag != "Parameter":
                self.application_error(f"12200 <{child.tag}> cannot be nested in <Stream>")
            parameters[child.get("name", "")] = child.get("value", "")
        track = noun.get("track", "inbound_track")
        if track not in TRACKS:
            self.result.warnings.append(f"<Stream track={track!r}> is not a track; streaming inbound_track")
            track = "inbound_track"
        if "outbound" in TRACKS[track]:
            self.result.warnings.append(f"<Stream track={track!r}>: the dev phone streams no outbound audio")
        written = (noun.get("url") or "").strip()
        url = urljoin(document_url, written) if written else ""
        if written and not written.lower().startswith(("http:", "https:")) and url.startswith(("http:", "https:")):
            url = "ws" + url[4:]  # a relative URL: the document's host, as a WebSocket URL
        self.streams.start(url, name, track, parameters, self.clock, self._stream_notice(noun, name))

    def _stream_notice(self, noun: ET.Element, name: str) -> StatusNotice | None:
        """Posts the stream's statusCallback (stream-started, stream-stopped, stream-error)."""
        callback = noun.get("statusCallback")
        if not callback:
            return None
        url = self.resolve(self.document_url, callback)
        method = noun.get("statusCallbackMethod", "POST")

        def notify(stream: StreamRecord, event: str, error: str) -> None:
            params = {
                "AccountSid": self.emulator.account_sid,
                "CallSid": self.call_sid,
                "StreamSid": stream.stream_sid,
                "StreamName": name or stream.stream_sid,
                "StreamEvent": event,
                "Timestamp": self.timestamp(),
            }
            if error:
                params["StreamError"] = error
            self._callback("stream-status", method, url, params)

        return notify

    def verb_stop(self, verb: ET.Element, document_url: str) -> None:
        for noun in verb:
            if noun.tag != "Stream":
                self.application_error(f"12200 <Stop><{noun.tag}> is not emulated by the dev phone")
            # Streams are matched by name, not URL; a <Stream/> naming none stops every open stream.
            name = noun.get("name", "")
            started = any(stream.name == name for stream in self.result.streams)
            if not self.streams.stop(name) and name and not started:
                self.result.warnings.append(f"<Stop><Stream name={name!r}>: no stream of that name was started")

    def verb_hangup(self, verb: ET.Element, document_url: str) -> None:
        raise _CallEnded("twilio")

    def verb_redirect(self, verb: ET.Element, document_url: str) -> _Fetch:
        return _Fetch("redirect", self.resolve(document_url, verb.text), verb.get("method", "POST"), {})

    def verb_gather(self, verb: ET.Element, document_url: str) -> _Fetch | None:
        action = self.resolve(document_url, verb.get("action"))
        num_digits_attr = verb.get("numDigits")
        num_digits = int(num_digits_attr) if num_digits_attr else None
        finish_on_key = verb.get("finishOnKey", "#")
        timeout = int(verb.get("timeout", "5"))
        inputs = frozenset(verb.get("input", "dtmf").split())
        for nested in verb:
            if nested.tag not in ("Say", "Play", "Pause"):
                self.application_error(f"12200 <{nested.tag}> cannot be nested in <Gather>")
            getattr(self, f"verb_{nested.tag.lower()}")(nested, document_url)
        answer = self.caller.answer_gather(GatherRequest(num_digits, finish_on_key, timeout, inputs, action))
        if answer is HANGUP:
            self.result.keys.append("hangup")
            raise _CallEnded("caller")
        params: dict[str, str] = {}
        if isinstance(answer, Speech):
            if "speech" in inputs:
                params = {"SpeechResult": answer.text, "Confidence": f"{answer.confidence:.2f}"}
                self.clock += len(answer.text) * 0.25
            else:
                self.result.warnings.append(f"speech {answer.text!r} at a <Gather> without speech input")
        elif isinstance(answer, str):
            self.result.keys.append(answer)
            if "dtmf" in inputs:
                digits, finished_on = self._collect(answer, num_digits, finish_on_key)
                if digits:
                    params = {"Digits": digits, "FinishedOnKey": finished_on}
                    filled = num_digits is not None and len(digits) >= num_digits
                    self.clock += len(answer) * 0.5 + (0 if finished_on or filled else timeout)
            else:
                self.result.warnings.append(f"keys {answer!r} at a <Gather> without dtmf input")
        if not params:
            self.clock += timeout
            if verb.get("actionOnEmptyResult", "false").lower() != "true":
                return None
            params = {"Digits": "", "FinishedOnKey": ""} if "dtmf" in inputs else {}
        return _Fetch("gather", action, verb.get("method", "POST"), params)

    def _collect(self, keys: str, num_digits: int | None, finish_on_key: str) -> tuple[str, str]:
        """Digits a <Gather> takes from `keys`, and the finishing key ('' when it timed out or filled up)."""
        digits = ""
        for index, key in enumerate(keys):
            if finish_on_key and key in finish_on_key:
                rest, finished = keys[index + 1 :], key
                break
            digits += key
            if num_digits is not None and len(digits) >= num_digits:
                rest, finished = keys[index + 1 :], ""
                break
        else:
            rest, finished = "", ""
        if rest:
            self.result.warnings.append(f"keys {rest!r} pressed after the <Gather> finished were lost")
        return digits, finished

    def verb_record(self, verb: ET.Element, document_url: str) -> _Fetch | None:
        action = self.resolve(document_url, verb.get("action"))
        max_length = int(verb.get("maxLength", "3600")) or 3600
        finish_on_key = verb.get("finishOnKey", "1234567890*#")
        timeout = int(verb.get("timeout", "5"))
        play_beep = verb.get("playBeep", "true").lower() != "false"
        callback = verb.get("recordingStatusCallback")
        events = set(verb.get("recordingStatusCallbackEvent", "completed").split())
        request = RecordRequest(max_length, finish_on_key, timeout, play_beep, action)
        answer = self.caller.answer_record(request)
        if play_beep:
            self.hear(Heard("beep", seconds=0.5))
        sid = new_sid("RE")
        start_time = self.timestamp()
        audio = read_audio(answer.wav) if isinstance(answer, Message) else None
        empty = audio is None or audio.duration <= 0
        if callback and "in-progress" in events and answer is not HANGUP:
            self.post_recording_status(callback, verb, sid, "in-progress", None, start_time, "RecordVerb")
        if answer is HANGUP:
            self.result.keys.append("hangup")
            raise _CallEnded("caller")
        if empty or audio is None or not isinstance(answer, Message):
            # Twilio requests nothing for an empty recording and carries on with the next verb.
            if self.streams.streaming and not (isinstance(answer, Message) and answer.finish == "hangup"):
                self.streams.send_audio(silence_frames(timeout), self.clock)
            self.clock += timeout
            if callback and "absent" in events:
                self.post_recording_status(callback, verb, sid, "absent", None, start_time, "RecordVerb")
            if isinstance(answer, Message) and answer.finish == "hangup":
                raise _CallEnded("caller")
            return None
        finish = answer.finish
        if audio.duration > max_length:
            audio = truncated(audio, max_length)
            finish = "max-length"
        speaking_from = self.clock
        self.clock += audio.duration
        params = self.register_recording(sid, audio, Path(answer.wav), "RecordVerb")
        caller_gone = finish == "hangup"
        if caller_gone:
            params["Digits"] = "hangup"
            self.status = "completed"
        elif len(finish) == 1 and finish in finish_on_key:
            params["Digits"] = finish
        elif finish not in ("timeout", "max-length"):
            self.result.warnings.append(
                f"key {finish!r} does not end a <Record finishOnKey={finish_on_key!r}>: it timed out"
            )
        timed_out = "Digits" not in params and finish != "max-length"
        if timed_out:
            self.clock += timeout
        if self.streams.streaming:
            # The caller speaks (then stays silent until the timeout) into every open stream; the action
            # is requested once the last frame is out, as Twilio does when the key is pressed.
            frames = mulaw_frames(audio.data) + (silence_frames(timeout) if timed_out else [])
            self.streams.send_audio(frames, speaking_from)
        if caller_gone:
            self.streams.stop_all()  # the call is over before its action is requested
        deliver_callback = self._recording_callback(callback, verb, sid, audio, start_time, "RecordVerb")
        return self._with_recording_callback(
            _Fetch("record", action, verb.get("method", "POST"), params, caller_gone), deliver_callback
        )

    def verb_dial(self, verb: ET.Element, document_url: str) -> _Fetch | None:
        action_attr = verb.get("action")
        action = self.resolve(document_url, action_attr) if action_attr else None
        timeout = int(verb.get("timeout", "30"))
        record = verb.get("record", "do-not-record")
        numbers: list[tuple[str, ET.Element | None]] = []
        if verb.text and verb.text.strip():
            numbers.append((verb.text.strip(), None))
        for child in verb:
            if child.tag != "Number":
                self.application_error(f"12200 <Dial><{child.tag}> is not emulated by the dev phone")
            numbers.append(((child.text or "").strip(), child))
        if not numbers:
            self.application_error("12200 <Dial> without a number")
        answer = self.caller.answer_dial(DialRequest(tuple(n for n, _ in numbers), timeout, record, action))
        caller_id = verb.get("callerId", self.from_)
        if answer is HANGUP or not isinstance(answer, DialOutcome):
            outcome = DialOutcome("no-answer", ring_seconds=1, talk_seconds=0, hangup_by="caller")
            status, caller_hung_up_ringing = "canceled", True
        else:
            outcome, status, caller_hung_up_ringing = answer, answer.status, False
            if status == "completed" and outcome.ring_seconds >= timeout:
                status = "no-answer"
        answered = status == "completed"
        ring = min(outcome.ring_seconds, timeout) if status in ("completed", "no-answer", "canceled") else 0
        talk = outcome.talk_seconds if answered else 0
        winner = outcome.answered_by or numbers[0][0]
        dial_sid = ""
        for number, noun in numbers:
            child_sid = new_sid("CA")
            if number == winner:
                dial_sid = child_sid
            child_status = status if number == winner or not answered else "canceled"
            self.post_number_events(
                noun, number, child_sid, caller_id, child_status, ring, talk if number == winner else 0
            )
        dial_sid = dial_sid or new_sid("CA")
        self.clock += ring + talk
        params = {"DialCallStatus": status, "DialCallSid": dial_sid}
        if answered:
            params["DialCallDuration"] = str(talk)
        deliver_callback: Callable[[], None] | None = None
        if answered and record not in ("do-not-record", "false"):
            channels = 2 if record.endswith("dual") else 1
            seconds = talk + (ring if "ringing" in record else 0)
            path = Path(outcome.recording_wav) if outcome.recording_wav else None
            audio = read_audio(path) if path else silent_audio(seconds, channels)
            sid = new_sid("RE")
            start_time = format_datetime(self.now() - timedelta(seconds=seconds))
            params.update(self.register_recording(sid, audio, path, "DialVerb"))
            deliver_callback = self._recording_callback(
                verb.get("recordingStatusCallback"), verb, sid, audio, start_time, "DialVerb"
            )
        caller_gone = caller_hung_up_ringing or (answered and outcome.hangup_by == "caller")
        if caller_gone:
            self.status = "completed"
        if action is None:
            self._deliver_now(deliver_callback)
            if caller_gone:
                raise _CallEnded("caller")
            return None
        return self._with_recording_callback(
            _Fetch("dial", action, verb.get("method", "POST"), params, caller_gone), deliver_callback
        )

    # -- recordings and callbacks ---------------------------------------------------------------

    def register_recording(self, sid: str, audio: Audio, path: Path | None, source: str) -> dict[str, str]:
        server = self.emulator.recording_server
        if server is None:
            self.result.errors.append("a recording was made but the emulator has no recording server")
            raise _CallEnded("twilio")
        duration = max(round(audio.duration), 1)
        # The Calls resource lets reconciliation learn who called, as from Twilio's REST API.
        server.add_call(self.call_sid, from_=self.from_, to=self.to, start_time=self.started, direction=self.direction)
        url = server.add(
            sid, audio.data, call_sid=self.call_sid, source=source, channels=audio.channels, duration=duration
        )
        self.result.recordings[sid] = path
        return {"RecordingUrl": url, "RecordingSid": sid, "RecordingDuration": str(duration)}

    def _recording_callback(
        self, callback: str | None, verb: ET.Element, sid: str, audio: Audio, start_time: str, source: str
    ) -> Callable[[], None] | None:
        events = set(verb.get("recordingStatusCallbackEvent", "completed").split())
        if not callback or "completed" not in events:
            return None

        def deliver() -> None:
            self.post_recording_status(callback, verb, sid, "completed", audio, start_time, source)

        return deliver

    def _with_recording_callback(self, request: _Fetch, deliver: Callable[[], None] | None) -> _Fetch:
        """Place the recording status callback around the action request as configured."""
        if deliver is None:
            return request
        timing = self.emulator.recording_callback_timing
        if timing == "before-action":
            deliver()
            return request
        if timing == "end-of-call":
            self.deferred.append(deliver)
            return request
        request.after = deliver
        return request

    def _deliver_now(self, deliver: Callable[[], None] | None) -> None:
        """Deliver a recording status callback when no action request follows."""
        if deliver is None:
            return
        if self.emulator.recording_callback_timing == "end-of-call":
            self.deferred.append(deliver)
        else:
            deliver()

    def post_recording_status(
        self,
        callback: str,
        verb: ET.Element,
        sid: str,
        status: str,
        audio: Audio | None,
        start_time: str,
        source: str,
    ) -> None:
        server = self.emulator.recording_server
        url = server.url_for(sid) if server is not None and audio is not None else ""
        params = {
            "AccountSid": self.emulator.account_sid,
            "CallSid": self.call_sid,
            "RecordingSid": sid,
            "RecordingUrl": url,
            "RecordingStatus": status,
            "RecordingDuration": str(max(round(audio.duration), 1)) if audio is not None else "0",
            "RecordingChannels": str(audio.channels if audio is not None else 1),
            "RecordingStartTime": start_time,
            "RecordingSource": source,
            "ErrorCode": "0",
        }
        if status == "in-progress":
            params["RecordingDuration"] = "-1"
        target = self.resolve(self.document_url, callback)
        self._callback("recording-status", verb.get("recordingStatusCallbackMethod", "POST"), target, params)

    def post_number_events(
        self,
        noun: ET.Element | None,
        number: str,
        child_sid: str,
        caller_id: str,
        final_status: str,
        ring: int,
        talk: int,
    ) -> None:
        """Status callbacks of one dialled leg (<Number statusCallback statusCallbackEvent>)."""
        if noun is None or not noun.get("statusCallback"):
            return
        wanted = set(noun.get("statusCallbackEvent", "completed").split())
        url = self.resolve(self.document_url, noun.get("statusCallback"))
        method = noun.get("statusCallbackMethod", "POST")
        timeline: list[tuple[str, str, float]] = [("initiated", "initiated", 0)]
        if final_status in ("completed", "no-answer", "canceled"):
            timeline.append(("ringing", "ringing", 0.5))
        if final_status == "completed":
            timeline.append(("answered", "in-progress", ring))
        timeline.append(("completed", final_status, ring + talk))
        for sequence, (event, call_status, offset) in enumerate(item for item in timeline if item[0] in wanted):
            params = {
                "AccountSid": self.emulator.account_sid,
                "ApiVersion": API_VERSION,
                "CallSid": child_sid,
                "ParentCallSid": self.call_sid,
                "CallStatus": call_status,
                "Direction": "outbound-dial",
                "From": caller_id,
                "To": number,
                "Caller": caller_id,
                "Called": number,
                "Timestamp": format_datetime(self.now() + timedelta(seconds=offset)),
                "CallbackSource": "call-progress-events",
                "SequenceNumber": str(sequence),
            }
            if event == "completed":
                params["CallDuration"] = str(talk)
                params["Duration"] = str(math.ceil(talk / 60))
            self._callback("dial-status", method, url, params)

    def post_progress(self, event: str, call_status: str) -> None:
        """An outbound call's StatusCallback for a progress event it asked for (initiated, ringing, answered)."""
        if self.status_callback is None:
            return
        url, method, events = self.status_callback
        if event not in events:
            return
        params = {
            **self.call_params(),
            "CallStatus": call_status,
            "Timestamp": self.timestamp(),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(len(self.result.requests_of("call-status"))),
        }
        if self.answered_by and event == "answered":
            params["AnsweredBy"] = self.answered_by
        self._callback("call-status", method, url, params)

    def post_call_status(self) -> None:
        """The status callback at the end of the call: the number's (inbound), or the StatusCallback of an
        outbound call when it asked for `completed`."""
        if self.status_callback is not None:
            url, method, events = self.status_callback
            if "completed" not in events:
                return
        elif self.emulator.status_path:
            url, method = self.emulator.public_url + self.emulator.status_path, "POST"
        else:
            return
        params = {
            **self.call_params(),
            "CallDuration": str(self.result.duration),
            "Duration": str(math.ceil(self.result.duration / 60)),
            "Timestamp": self.timestamp(),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(len(self.result.requests_of("call-status"))),
        }
        if self.answered_by:
            params["AnsweredBy"] = self.answered_by
        self._callback("call-status", method, url, params)

    def _callback(self, kind: str, method: str, url: str, params: dict[str, str]) -> None:
        reply = self.send(kind, method, url, params)
        if not reply.ok:
            detail = f"HTTP {reply.status}" if reply.status else reply.body
            self.result.warnings.append(f"15003 {kind} callback {url} failed: {detail}")
