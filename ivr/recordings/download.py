"""The download job: fetch a completed recording from Twilio and store the bytes exactly as received."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import wave
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests

from ivr.db import utcnow
from ivr.jobs import JobContext, PermanentJobError, schedule_job
from ivr.models import Recording, RecordingState

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
TRANSCRIBE_JOB = "transcribe_recording"


class RecordingUnavailable(Exception):
    """Twilio did not (yet) give us the audio; worth retrying."""


def checked_media_url(source_url: str, allowed_hosts: tuple[str, ...]) -> str:
    """The `.wav` URL to fetch, after refusing hosts we do not trust (the URL came in a webhook)."""
    parts = urlsplit(source_url)
    host = (parts.hostname or "").lower()
    if host not in {h.lower() for h in allowed_hosts}:
        raise PermanentJobError(f"recording host {host!r} is not in IVR_RECORDING_HOSTS; refusing to download")
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        raise PermanentJobError(f"recording URL must be https, not {parts.scheme!r}")
    path = parts.path
    for suffix in (".wav", ".mp3", ".json"):
        path = path.removesuffix(suffix)
    return parts._replace(path=path + ".wav", query="", fragment="").geturl()


def wav_facts(data: bytes) -> tuple[float | None, int | None]:
    """Duration in seconds and channel count read from a WAV header, or (None, None)."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            return wav.getnframes() / float(wav.getframerate()), wav.getnchannels()
    except (wave.Error, EOFError, ZeroDivisionError):
        return None, None


def storage_path(recording: Recording, timezone: str) -> Path:
    """Where a recording lives under IVR_RECORDINGS_DIR: by local date of the call, then CallSid."""
    day = recording.call.started_at.astimezone(ZoneInfo(timezone))
    return Path(f"{day:%Y/%m/%d}") / recording.call.call_sid / f"{recording.recording_sid}.wav"


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def fetch_recording_bytes(url: str, account_sid: str, auth_token: str) -> tuple[bytes, str | None]:
    """GET the media with Twilio's basic auth; raises RecordingUnavailable on anything but 200."""
    try:
        response = requests.get(url, auth=(account_sid, auth_token), timeout=(5, 120))
    except requests.RequestException as exc:
        raise RecordingUnavailable(f"could not reach {urlsplit(url).netloc}: {exc}") from exc
    if response.status_code != 200:
        raise RecordingUnavailable(f"HTTP {response.status_code} from {url}")
    expected = response.headers.get("Content-Length")
    if expected is not None and expected.isdigit() and int(expected) != len(response.content):
        raise RecordingUnavailable(f"truncated download: {len(response.content)} of {expected} bytes")
    if not response.content:
        raise RecordingUnavailable(f"empty body from {url}")
    return response.content, response.headers.get("Content-Type")


def download_recording(context: JobContext, recording_id: int) -> None:
    """Job handler: store the recording's bytes with their SHA-256, size and duration."""
    settings = context.settings
    with context.database.session() as session:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.state == RecordingState.STORED:
            return
        if not recording.source_url:
            raise PermanentJobError("Twilio gave no RecordingUrl for this recording")
        url = checked_media_url(recording.source_url, settings.recording_hosts)
        relative = storage_path(recording, settings.timezone)
        recording.state = RecordingState.DOWNLOADING

    data, content_type = fetch_recording_bytes(url, settings.twilio_account_sid, settings.twilio_auth_token)
    _write_atomically(settings.recordings_dir / relative, data)
    duration, channels = wav_facts(data)

    with context.database.session() as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        recording.state = RecordingState.STORED
        recording.path = relative.as_posix()
        recording.sha256 = hashlib.sha256(data).hexdigest()
        recording.size = len(data)
        recording.content_type = content_type
        recording.duration = duration if duration is not None else recording.duration
        recording.channels = channels or recording.channels
        recording.stored_at = utcnow()
        recording.error = None
        schedule_job(session, TRANSCRIBE_JOB, recording_id)


def recording_download_failed(context: JobContext, recording_id: int, error: str) -> None:
    """Give-up hook: the recording stays listed (Twilio still holds it) and says why it is missing."""
    with context.database.session() as session:
        recording = session.get(Recording, recording_id)
        if recording is not None and recording.state != RecordingState.STORED:
            recording.state = RecordingState.FAILED
            recording.error = error
