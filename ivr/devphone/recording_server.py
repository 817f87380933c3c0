"""A local stand-in for api.twilio.com's recordings and calls, served the way Twilio serves them.

Under `/2010-04-01/Accounts/{AccountSid}/`:

- `Recordings/{RecordingSid}` returns the WAV (also with `.wav`), `.mp3` an MP3 rendition (made with ffmpeg
  when none was registered) and `.json` the Recording resource;
- `Recordings.json` lists the recordings, newest first, with Twilio's paging (`PageSize` up to 1000, `Page`,
  `PageToken`, `next_page_uri`) and its date filters (`DateCreated>=YYYY-MM-DD`, `DateCreated<=…`,
  `DateCreated=…`, day granularity in GMT) and `CallSid`;
- `Calls/{CallSid}.json` is the Call resource (from, to, start time…) of a call the server knows (the
  emulator registers each call that makes a recording), and `Calls.json` lists them;
- `POST Calls.json` places an outbound call: the request is kept (`placed_calls`, a `PlacedCall` each; waited
  for with `next_placed_call`) and answered 201 with the new Call resource (status `queued`); the emulator's
  `answer_outbound` then plays it.

Requests need HTTP basic auth with the account SID and auth token (401 otherwise); an unknown SID is a 404.
Tests can make the next requests of a recording, a call or a list fail, and count fetches per SID.
"""

from __future__ import annotations

import base64
import hmac
import json
import operator
import re
import secrets
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Recordings/(?P<sid>RE[0-9a-fA-F]{32})(?P<ext>\.\w+)?$")
_LIST = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<resource>Recordings|Calls)\.json$")
_CALL = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Calls/(?P<sid>CA[0-9a-fA-F]{32})\.json$")
API_VERSION = "2010-04-01"
DEFAULT_PAGE_SIZE = 50  # Twilio's default and maximum page sizes
MAX_PAGE_SIZE = 1000

Answer = tuple[int, str, bytes, dict[str, str]]


@dataclass
class StoredRecording:
    """One recording as the server holds it."""

    sid: str
    wav: bytes
    call_sid: str = ""
    source: str = "RecordVerb"
    channels: int = 1
    duration: int = 0
    mp3: bytes | None = None
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "completed"


@dataclass
class StoredCall:
    """One call as the server knows it (Twilio's Call resource, the fields the line may ask for)."""

    sid: str
    from_: str
    to: str
    start_time: datetime
    direction: str = "inbound"
    status: str = "completed"
    end_time: datetime | None = None
    duration: int | None = None


@dataclass(frozen=True)
class PlacedCall:
    """An outbound call the line asked for (`POST Calls.json`), with the parameters as sent."""

    sid: str
    to: str
    from_: str
    url: str
    method: str
    status_callback: str
    status_callback_method: str
    status_callback_events: tuple[str, ...]
    machine_detection: str
    params: dict[str, list[str]]


@dataclass
class _Failure:
    status: int
    remaining: int
    after: int = 0  # successful answers to give first


@dataclass
class FetchLog:
    """One request the server answered: path, status, and whether credentials were accepted."""

    path: str
    status: int
    authenticated: bool
    extra: dict[str, str] = field(default_factory=dict)


class RecordingServer:
    """Threaded HTTP server on 127.0.0.1 serving registered recordings with Twilio's URLs and auth."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        require_auth: bool = True,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.host = host
        self.port = port
        self.require_auth = require_auth
        self._recordings: dict[str, StoredRecording] = {}
        self._calls: dict[str, StoredCall] = {}
        self._failures: dict[str, _Failure] = {}
        self._fetches: Counter[str] = Counter()
        self.log: list[FetchLog] = []
        self.placed_calls: list[PlacedCall] = []
        self._lock = threading.Lock()
        self._placed = threading.Condition(self._lock)  # notified at each placed call
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # While set, every request is answered 503: Twilio's media host having an outage.
        self.outage = False

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> RecordingServer:
        """Bind (port 0 picks a free port) and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, self.port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="devphone-recordings", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the recording server is not running: call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}"

    # recordings --------------------------------------------------------------------------------

    def url_for(self, recording_sid: str) -> str:
        """The RecordingUrl Twilio reports: no file extension."""
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording_sid}"

    def add(
        self,
        recording_sid: str,
        wav: bytes | Path | str,
        *,
        call_sid: str = "",
        source: str = "RecordVerb",
        channels: int = 1,
        duration: int = 0,
        mp3: bytes | None = None,
        date_created: datetime | None = None,
        status: str = "completed",
    ) -> str:
        """Register a recording (WAV bytes or a WAV file) and return its RecordingUrl."""
        data = wav if isinstance(wav, bytes) else Path(wav).read_bytes()
        created = (date_created or datetime.now(UTC)).astimezone(UTC)
        with self._lock:
            self._recordings[recording_sid] = StoredRecording(
                recording_sid, data, call_sid, source, channels, duration, mp3, created, status
            )
        return self.url_for(recording_sid)

    def add_call(
        self,
        call_sid: str,
        *,
        from_: str,
        to: str,
        start_time: datetime | None = None,
        direction: str = "inbound",
        status: str = "completed",
        end_time: datetime | None = None,
        duration: int | None = None,
    ) -> None:
        """Register (or replace) the Call resource `Calls/{call_sid}.json` answers with."""
        with self._lock:
            self._calls[call_sid] = StoredCall(
                call_sid,
                from_,
                to,
                (start_time or datetime.now(UTC)).astimezone(UTC),
                direction,
                status,
                end_time,
                duration,
            )

    def next_placed_call(self, index: int, timeout: float) -> PlacedCall | None:
        """`placed_calls[index]`, waiting up to `timeout` seconds for the line to place it; None if it did not."""
        with self._placed:
            self._placed.wait_for(lambda: len(self.placed_calls) > index, timeout)
            return self.placed_calls[index] if len(self.placed_calls) > index else None

    def get_call(self, call_sid: str) -> StoredCall | None:
        with self._lock:
            return self._calls.get(call_sid)

    def remove(self, recording_sid: str) -> None:
        """Forget a recording, as if deleted on Twilio: later fetches are 404."""
        with self._lock:
            self._recordings.pop(recording_sid, None)

    def get(self, recording_sid: str) -> StoredRecording | None:
        with self._lock:
            return self._recordings.get(recording_sid)

    @property
    def recording_sids(self) -> list[str]:
        with self._lock:
            return list(self._recordings)

    def fail_next(self, key: str, times: int = 1, status: int = 500, *, after: int = 0) -> None:
        """Answer the next `times` authenticated requests for `key` with `status` (e.g. 500, 404), after
        `after` successful ones. `key` is a RecordingSid (its media and metadata), a CallSid, or
        "Recordings" / "Calls" for a list (any page)."""
        with self._lock:
            self._failures[key] = _Failure(status, times, after)

    def fetch_count(self, recording_sid: str) -> int:
        """Authenticated fetches of this SID so far, failed ones included."""
        with self._lock:
            return self._fetches[recording_sid]

    # request handling ---------------------------------------------------------------------------

    def _authorized(self, header: str | None) -> bool:
        if not self.require_auth:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.account_sid) and hmac.compare_digest(password, self.auth_token)

    def _injected_failure(self, key: str) -> Answer | None:
        """The failure `fail_next` asked for on this request, if any (call with the lock held)."""
        failure = self._failures.get(key)
        if failure is None or failure.remaining <= 0:
            return None
        if failure.after > 0:
            failure.after -= 1
            return None
        failure.remaining -= 1
        return _error(failure.status, 20500, f"injected failure ({failure.remaining} more)")

    def _answer(self, path: str, auth_header: str | None) -> Answer:
        """(status, content type, body, extra headers) for a GET of `path`."""
        target = urlsplit(path)
        if self.outage:
            return _error(503, 20503, "Service Unavailable (outage injected)")
        if not self._authorized(auth_header):
            return _error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        for pattern, answer in (
            (_PATH, self._recording_answer),
            (_LIST, self._list_answer),
            (_CALL, self._call_answer),
        ):
            match = pattern.match(target.path)
            if match is not None and match["account"] == self.account_sid:
                return answer(match, target.query)
        return _error(404, 20404, f"The requested resource {path} was not found")

    def _place_call(self, path: str, auth_header: str | None, body: str) -> Answer:
        """(status, content type, body, extra headers) for a POST of `path`: only `Calls.json` places a call."""
        if self.outage:
            return _error(503, 20503, "Service Unavailable (outage injected)")
        if not self._authorized(auth_header):
            return _error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        match = _LIST.match(urlsplit(path).path)
        if match is None or match["account"] != self.account_sid or match["resource"] != "Calls":
            return _error(405, 20004, f"Method not allowed: POST {path}")
        params: dict[str, list[str]] = {}
        for name, value in parse_qsl(body, keep_blank_values=True):
            params.setdefault(name, []).append(value)

        def one(name: str, default: str = "") -> str:
            return params.get(name, [default])[0]

        for required, code in (("To", 21201), ("From", 21213), ("Url", 21205)):
            if not one(required):
                return _error(400, code, f"No '{required}' number is specified")
        with self._lock:
            failure = self._injected_failure("Calls")
            if failure is not None:
                return failure
        sid = "CA" + secrets.token_hex(16)
        events = tuple(event for value in params.get("StatusCallbackEvent", []) for event in value.split())
        placed = PlacedCall(
            sid,
            one("To"),
            one("From"),
            one("Url"),
            one("Method", "POST").upper(),
            one("StatusCallback"),
            one("StatusCallbackMethod", "POST").upper(),
            events or ("completed",),
            one("MachineDetection"),
            params,
        )
        self.add_call(sid, from_=placed.from_, to=placed.to, direction="outbound-api", status="queued")
        with self._lock:
            self.placed_calls.append(placed)
            self._placed.notify_all()
            call = self._calls[sid]
        return 201, "application/json", json.dumps(self._call_resource(call)).encode(), {}

    def _recording_answer(self, match: re.Match[str], query: str) -> Answer:
        sid, ext = match["sid"], (match["ext"] or "").lower()
        with self._lock:
            self._fetches[sid] += 1
            failure = self._injected_failure(sid)
            if failure is not None:
                return failure
            recording = self._recordings.get(sid)
        if recording is None:
            return _not_found(match.string)
        if ext in ("", ".wav"):
            return 200, "audio/x-wav", recording.wav, {}
        if ext == ".mp3":
            mp3 = recording.mp3 or _to_mp3(recording.wav)
            if mp3 is None:
                return _error(404, 20404, "no MP3 rendition: register one or install ffmpeg")
            recording.mp3 = mp3
            return 200, "audio/mpeg", mp3, {}
        if ext == ".json":
            return _json(self._metadata(recording))
        return _not_found(match.string)

    def _call_answer(self, match: re.Match[str], query: str) -> Answer:
        sid = match["sid"]
        with self._lock:
            self._fetches[sid] += 1
            failure = self._injected_failure(sid)
            if failure is not None:
                return failure
            call = self._calls.get(sid)
        if call is None:
            return _not_found(match.string)
        return _json(self._call_resource(call))

    def _list_answer(self, match: re.Match[str], query: str) -> Answer:
        """A page of Recordings.json or Calls.json, as Twilio pages its 2010-04-01 lists."""
        resource = match["resource"]
        params = dict(parse_qsl(query, keep_blank_values=True))
        try:
            page_size = int(params.get("PageSize") or DEFAULT_PAGE_SIZE)
            page = int(params.get("Page") or 0)
        except ValueError:
            return _error(400, 20001, "PageSize and Page must be integers")
        if not 1 <= page_size <= MAX_PAGE_SIZE or page < 0:
            return _error(400, 20001, f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
        with self._lock:
            failure = self._injected_failure(resource)
            if failure is not None:
                return failure
            if resource == "Recordings":
                recordings = sorted(self._recordings.values(), key=lambda r: (r.date_created, r.sid), reverse=True)
                try:
                    kept = _by_date(recordings, params, "DateCreated", lambda r: r.date_created)
                except ValueError as exc:
                    return _error(400, 20001, str(exc))
                if params.get("CallSid"):
                    kept = [r for r in kept if r.call_sid == params["CallSid"]]
                sids = [r.sid for r in kept]
                items = [self._metadata(r) for r in kept]
            else:
                calls = sorted(self._calls.values(), key=lambda c: (c.start_time, c.sid), reverse=True)
                for name, attribute in (("From", "from_"), ("To", "to"), ("Status", "status")):
                    if params.get(name):
                        calls = [c for c in calls if getattr(c, attribute) == params[name]]
                sids = [c.sid for c in calls]
                items = [self._call_resource(c) for c in calls]
        # PageToken "PA<sid>" continues after that item (stable while new items arrive), as Twilio's does.
        start = page * page_size
        token = params.get("PageToken", "")
        if token.startswith("PA") and token[2:] in sids:
            start = sids.index(token[2:]) + 1
        chunk = items[start : start + page_size]
        filters = {k: v for k, v in params.items() if k not in ("Page", "PageSize", "PageToken")}
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/{resource}.json"

        def page_uri(number: int, after: str | None = None) -> str:
            query = {**filters, "PageSize": str(page_size), "Page": str(number)}
            if after:
                query["PageToken"] = "PA" + after
            return base + "?" + urlencode(query)

        more = start + page_size < len(items)
        body: dict[str, Any] = {
            resource.lower(): chunk,
            "page": page,
            "page_size": page_size,
            "start": start,
            "end": start + max(len(chunk) - 1, 0),
            "uri": page_uri(page, token[2:] if token.startswith("PA") else None),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1, sids[start + page_size - 1]) if more else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        }
        return _json(body)

    def _metadata(self, recording: StoredRecording) -> dict[str, object]:
        """The Recording resource, with Twilio's field names and formats."""
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{recording.sid}"
        created = format_datetime(recording.date_created, usegmt=True)
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "call_sid": recording.call_sid,
            "conference_sid": None,
            "date_created": created,
            "date_updated": created,
            "start_time": format_datetime(recording.date_created, usegmt=True),
            "duration": str(recording.duration),
            "sid": recording.sid,
            "price": None,
            "price_unit": "USD",
            "status": recording.status,
            "channels": recording.channels,
            "source": recording.source,
            "error_code": None,
            "encryption_details": None,
            "uri": base + ".json",
            "media_url": self.url_for(recording.sid) if self._server is not None else None,
            "subresource_uris": {
                "add_on_results": base + "/AddOnResults.json",
                "transcriptions": base + "/Transcriptions.json",
            },
        }

    def _call_resource(self, call: StoredCall) -> dict[str, object]:
        """The Call resource, with Twilio's field names and formats."""
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call.sid}"
        started = format_datetime(call.start_time, usegmt=True)
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "date_created": started,
            "date_updated": started,
            "parent_call_sid": None,
            "from": call.from_,
            "from_formatted": call.from_,
            "to": call.to,
            "to_formatted": call.to,
            "phone_number_sid": None,
            "status": call.status,
            "start_time": started,
            "end_time": format_datetime(call.end_time, usegmt=True) if call.end_time else None,
            "duration": str(call.duration) if call.duration is not None else None,
            "price": None,
            "price_unit": "USD",
            "direction": call.direction,
            "answered_by": None,
            "forwarded_from": None,
            "caller_name": None,
            "group_sid": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": base + ".json",
            "subresource_uris": {
                "recordings": base + "/Recordings.json",
                "notifications": base + "/Notifications.json",
                "events": base + "/Events.json",
            },
        }


def _by_date(
    items: Sequence[StoredRecording], params: dict[str, str], name: str, when: Callable[[StoredRecording], datetime]
) -> list[StoredRecording]:
    """Twilio's day filters: `Name>=day` (on or after), `Name<=day` (on or before), `Name=day`, in GMT.

    On the wire `DateCreated>=2026-11-25` is the parameter `DateCreated>` with the value `2026-11-25`.
    """
    kept = list(items)
    tests: tuple[tuple[str, Callable[[date, date], bool]], ...] = (
        (name + ">", operator.ge),
        (name + ">=", operator.ge),
        (name + "<", operator.le),
        (name + "<=", operator.le),
        (name, operator.eq),
    )
    for key, test in tests:
        if key in params:
            try:
                reference = date.fromisoformat(params[key][:10])
            except ValueError as exc:
                raise ValueError(f"{key} must be a date YYYY-MM-DD, not {params[key]!r}") from exc
            kept = [item for item in kept if test(when(item).astimezone(UTC).date(), reference)]
    return kept


def _json(body: object) -> Answer:
    return 200, "application/json", json.dumps(body).encode(), {}


def _not_found(path: str) -> Answer:
    return _error(404, 20404, f"The requested resource {path} was not found")


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return status, "application/json", json.dumps(body).encode(), headers or {}


def _to_mp3(wav: bytes) -> bytes | None:
    """Encode with ffmpeg when it is installed; None otherwise."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return None
    done = subprocess.run(
        [ffmpeg, "-loglevel", "error", "-f", "wav", "-i", "pipe:0", "-f", "mp3", "pipe:1"],
        input=wav,
        capture_output=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 and done.stdout else None


def _make_handler(owner: RecordingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "devphone-recordings"
        protocol_version = "HTTP/1.1"

        def _respond(self, with_body: bool) -> None:
            auth = self.headers.get("Authorization")
            status, content_type, body, extra = owner._answer(self.path, auth)
            with owner._lock:
                owner.log.append(FetchLog(self.path, status, status != 401))
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._respond(with_body=True)

        def do_HEAD(self) -> None:
            self._respond(with_body=False)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            status, content_type, answer, extra = owner._place_call(self.path, self.headers.get("Authorization"), body)
            with owner._lock:
                owner.log.append(FetchLog(self.path, status, status != 401, {"method": "POST"}))
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(answer)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            # Fetches are kept in owner.log; stderr noise would garble the dev phone's terminal.
            pass

    return Handler
