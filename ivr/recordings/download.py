"""The download job: fetch a completed recording from Twilio and store the bytes exactly as received.

The body is streamed to a temporary file beside its final name (hashed as it is written, fsynced, then
renamed), so memory stays flat whatever the size, and a recording above IVR_MAX_RECORDING_BYTES is refused.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import requests
from sqlalchemy.orm import Session

from ivr.db import utcnow
from ivr.durable import fsync_directory
from ivr.jobs import JobContext, PermanentJobError, job
from ivr.models import Recording, RecordingState
from ivr.recordings.transcribe import transcribe_recording
from ivr.twilio_sids import CALL_SID, RECORDING_SID

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 3
STORED_CONTENT_TYPE = "audio/wav"
REDIRECT_STATUSES = {301, 302, 303, 307, 308}


class RecordingUnavailable(Exception):
    """Twilio did not (yet) give us the audio; worth retrying."""


class RecordingTooLarge(PermanentJobError):
    """The recording is larger than IVR_MAX_RECORDING_BYTES; retrying would not make it smaller."""

    def __init__(self, limit: int, detail: str) -> None:
        super().__init__(
            f"recording is larger than IVR_MAX_RECORDING_BYTES ({limit} bytes); refusing to store it ({detail})"
        )


@dataclass(frozen=True)
class StoredFile:
    """What was written: the bytes' SHA-256 and size, and the Content-Type Twilio sent."""

    sha256: str
    size: int
    content_type: str | None


def checked_media_url(source_url: str, allowed_hosts: tuple[str, ...], *, allow_loopback_http: bool = True) -> str:
    """The `.wav` URL to fetch, after refusing anything but a plain URL on a host we trust: the URL came in a
    webhook, and what requests would fetch must be what we checked. https only (http only to loopback, and
    only outside production); no user info, backslashes, spaces or control characters; no port but the
    scheme's own (loopback excepted); the host in IVR_RECORDING_HOSTS."""
    if not source_url.isascii() or any(ch in source_url for ch in "\\ \t\r\n") or not source_url.isprintable():
        raise PermanentJobError("recording URL has characters a URL may not have; refusing to download")
    parts = urlsplit(source_url)
    host = (parts.hostname or "").lower()
    loopback = host in LOOPBACK_HOSTS
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback and allow_loopback_http):
        raise PermanentJobError(f"recording URL must be https, not {parts.scheme!r}")
    if "@" in parts.netloc:
        raise PermanentJobError("recording URL carries user info; refusing to download")
    try:
        port = parts.port
    except ValueError:
        raise PermanentJobError("recording URL has an invalid port; refusing to download") from None
    if port not in (None, 443) and not loopback:
        raise PermanentJobError(f"recording URL uses port {port}; only the standard https port is allowed")
    if host not in {h.lower() for h in allowed_hosts}:
        raise PermanentJobError(f"recording host {host!r} is not in IVR_RECORDING_HOSTS; refusing to download")
    path = parts.path
    for suffix in (".wav", ".mp3", ".json"):
        path = path.removesuffix(suffix)
    return parts._replace(path=path + ".wav", query="", fragment="").geturl()


def checked_redirect(location: str, current: str, allowed_hosts: tuple[str, ...], *, allow_loopback_http: bool) -> str:
    """A redirect target, checked like the first URL (it is fetched as given, not turned into `.wav`)."""
    target = urljoin(current, location)
    checked_media_url(target, allowed_hosts, allow_loopback_http=allow_loopback_http)
    return target


def wav_facts(path: Path) -> tuple[float | None, int | None]:
    """Duration in seconds and channel count read from a WAV file's header, or (None, None)."""
    try:
        with wave.open(str(path)) as wav:
            return wav.getnframes() / float(wav.getframerate()), wav.getnchannels()
    except (wave.Error, EOFError, ZeroDivisionError):
        return None, None


def storage_path(recording: Recording, timezone: str) -> Path:
    """Where a recording lives under IVR_RECORDINGS_DIR: by local date of the call, then CallSid. Both
    SIDs must have Twilio's shapes before they become part of a path."""
    if not RECORDING_SID.fullmatch(recording.recording_sid) or not CALL_SID.fullmatch(recording.call.call_sid):
        raise PermanentJobError("RecordingSid or CallSid is not in Twilio's format; refusing to store it")
    day = recording.call.started_at.astimezone(ZoneInfo(timezone))
    return Path(f"{day:%Y/%m/%d}") / recording.call.call_sid / f"{recording.recording_sid}.wav"


def fetch_recording_to(
    target: Path,
    url: str,
    account_sid: str,
    auth_token: str,
    *,
    max_bytes: int,
    allowed_hosts: tuple[str, ...] = (),
    allow_loopback_http: bool = True,
) -> StoredFile:
    """GET the media with Twilio's basic auth and store it at `target` (atomically, fsynced). Raises
    RecordingUnavailable (worth retrying: not 200, cut short, empty) or RecordingTooLarge. A redirect is
    followed only to a URL that passes the same checks, and the credentials go only to the first host."""
    origin = urlsplit(url).netloc
    for _ in range(MAX_REDIRECTS + 1):
        auth = (account_sid, auth_token) if urlsplit(url).netloc == origin else None
        try:
            response = requests.get(url, auth=auth, timeout=(5, 120), stream=True, allow_redirects=False)
        except requests.RequestException as exc:
            raise RecordingUnavailable(f"could not reach {urlsplit(url).netloc}: {exc}") from exc
        if response.status_code not in REDIRECT_STATUSES:
            break
        response.close()
        url = checked_redirect(
            response.headers.get("Location", ""),
            url,
            allowed_hosts or (urlsplit(url).hostname or "",),
            allow_loopback_http=allow_loopback_http,
        )
    else:
        raise PermanentJobError(f"more than {MAX_REDIRECTS} redirects for the recording; refusing to follow")
    with response:
        if response.status_code != 200:
            _read_a_little(response)
            raise RecordingUnavailable(f"HTTP {response.status_code} from {url}")
        declared = response.headers.get("Content-Length", "")
        expected = int(declared) if declared.isdigit() else None
        if expected is not None and expected > max_bytes:
            raise RecordingTooLarge(max_bytes, f"Content-Length {expected}")
        if response.headers.get("Content-Encoding", "identity").lower() != "identity":
            expected = None  # the length is of the encoded body; requests hands us the decoded bytes
        target.parent.mkdir(parents=True, exist_ok=True)
        # A download of this recording cut off by a killed process left its part behind; the job's lease
        # means no other download of it is running now.
        for stale in target.parent.glob(f".part-{target.stem}-*"):
            stale.unlink(missing_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".part-{target.stem}-")
        temp = Path(temp_name)
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                try:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        size += len(chunk)
                        if size > max_bytes:
                            raise RecordingTooLarge(max_bytes, f"more than {max_bytes} bytes arrived")
                        digest.update(chunk)
                        out.write(chunk)
                except requests.RequestException as exc:
                    of = f" of {expected}" if expected is not None else ""
                    raise RecordingUnavailable(f"truncated download: {size}{of} bytes, then {exc}") from exc
                if expected is not None and size != expected:
                    raise RecordingUnavailable(f"truncated download: {size} of {expected} bytes")
                if size == 0:
                    raise RecordingUnavailable(f"empty body from {url}")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    fsync_directory(target.parent)
    return StoredFile(digest.hexdigest(), size, response.headers.get("Content-Type"))


def _read_a_little(response: requests.Response) -> None:
    """Read a small error body, so the connection closes cleanly instead of being reset."""
    received = 0
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            received += len(chunk)
            if received >= CHUNK_BYTES:
                break
    except requests.RequestException:
        pass  # the status code is what the caller reports


def recording_download_failed(context: JobContext, recording_id: int, error: str) -> None:
    """Give-up hook: the recording stays listed (Twilio still holds it) and says why it is missing."""
    with context.database.session() as session:
        recording = session.get(Recording, recording_id)
        if recording is not None and recording.state != RecordingState.STORED:
            recording.state = RecordingState.FAILED
            recording.error = error


def recording_download_retried(session: Session, recording_id: int) -> None:
    """Retry hook (`ivr jobs retry`): a recording the download gave up on is pending again, its error gone."""
    recording = session.get(Recording, recording_id)
    if recording is not None and recording.state != RecordingState.STORED:
        recording.state = RecordingState.PENDING
        recording.error = None


@job("download_recording", give_up=recording_download_failed, retried=recording_download_retried)
def download_recording(context: JobContext, recording_id: int) -> None:
    """Job handler: store the recording's bytes with their SHA-256, size and duration."""
    settings = context.settings
    with context.database.session() as session:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.state == RecordingState.STORED:
            return
        if not recording.source_url:
            raise PermanentJobError("Twilio gave no RecordingUrl for this recording")
        url = checked_media_url(recording.source_url, settings.recording_hosts, allow_loopback_http=settings.debug)
        relative = storage_path(recording, settings.timezone)
        recording.state = RecordingState.DOWNLOADING

    target = settings.recordings_dir / relative
    stored = fetch_recording_to(
        target,
        url,
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        max_bytes=settings.max_recording_bytes,
        allowed_hosts=settings.recording_hosts,
        allow_loopback_http=settings.debug,
    )
    duration, channels = wav_facts(target)

    with context.database.session() as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        recording.state = RecordingState.STORED
        recording.path = relative.as_posix()
        recording.sha256 = stored.sha256
        recording.size = stored.size
        recording.content_type = STORED_CONTENT_TYPE  # what we asked for (.wav), never what upstream claimed
        recording.duration = duration if duration is not None else recording.duration
        recording.channels = channels or recording.channels
        recording.stored_at = utcnow()
        recording.error = None
        transcribe_recording.schedule(session, recording_id)
