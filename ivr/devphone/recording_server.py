"""A local stand-in for api.twilio.com's recording media, served the way Twilio serves it.

`GET /2010-04-01/Accounts/{AccountSid}/Recordings/{RecordingSid}` returns the WAV (also with `.wav`),
`.mp3` an MP3 rendition (made with ffmpeg when none was registered) and `.json` the metadata.
Requests need HTTP basic auth with the account SID and auth token (401 otherwise); an unknown SID
is a 404. Tests can make the next fetches of a recording fail and count fetches per SID.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import shutil
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Recordings/(?P<sid>RE[0-9a-fA-F]{32})(?P<ext>\.\w+)?$")


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


@dataclass
class _Failure:
    status: int
    remaining: int


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
        self._failures: dict[str, _Failure] = {}
        self._fetches: Counter[str] = Counter()
        self.log: list[FetchLog] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

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
    ) -> str:
        """Register a recording (WAV bytes or a WAV file) and return its RecordingUrl."""
        data = wav if isinstance(wav, bytes) else Path(wav).read_bytes()
        with self._lock:
            self._recordings[recording_sid] = StoredRecording(
                recording_sid, data, call_sid, source, channels, duration, mp3
            )
        return self.url_for(recording_sid)

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

    def fail_next(self, recording_sid: str, times: int = 1, status: int = 500) -> None:
        """Answer the next `times` authenticated fetches of `recording_sid` with `status` (e.g. 500, 404)."""
        with self._lock:
            self._failures[recording_sid] = _Failure(status, times)

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

    def _answer(self, path: str, auth_header: str | None) -> tuple[int, str, bytes, dict[str, str]]:
        """(status, content type, body, extra headers) for a GET of `path`."""
        match = _PATH.match(path.split("?", 1)[0])
        if not self._authorized(auth_header):
            return _error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        if match is None or match["account"] != self.account_sid:
            return _error(404, 20404, f"The requested resource {path} was not found")
        sid, ext = match["sid"], (match["ext"] or "").lower()
        with self._lock:
            self._fetches[sid] += 1
            failure = self._failures.get(sid)
            if failure is not None and failure.remaining > 0:
                failure.remaining -= 1
                return _error(failure.status, 20500, f"injected failure ({failure.remaining} more)")
            recording = self._recordings.get(sid)
        if recording is None:
            return _error(404, 20404, f"The requested resource {path} was not found")
        if ext in ("", ".wav"):
            return 200, "audio/x-wav", recording.wav, {}
        if ext == ".mp3":
            mp3 = recording.mp3 or _to_mp3(recording.wav)
            if mp3 is None:
                return _error(404, 20404, "no MP3 rendition: register one or install ffmpeg")
            recording.mp3 = mp3
            return 200, "audio/mpeg", mp3, {}
        if ext == ".json":
            return 200, "application/json", json.dumps(self._metadata(recording)).encode(), {}
        return _error(404, 20404, f"The requested resource {path} was not found")

    def _metadata(self, recording: StoredRecording) -> dict[str, object]:
        return {
            "sid": recording.sid,
            "account_sid": self.account_sid,
            "call_sid": recording.call_sid,
            "status": "completed",
            "source": recording.source,
            "channels": recording.channels,
            "duration": str(recording.duration),
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording.sid}.json",
        }


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> tuple[int, str, bytes, dict[str, str]]:
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

        def log_message(self, format: str, *args: object) -> None:
            # Fetches are kept in owner.log; stderr noise would garble the dev phone's terminal.
            pass

    return Handler
