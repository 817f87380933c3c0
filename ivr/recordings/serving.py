"""Serving a stored recording to staff: the exact bytes, seekable, never cached by browsers or proxies."""

from __future__ import annotations

from flask import Response, abort, send_file

from ivr.models import Recording, RecordingState
from ivr.recordings.download import STORED_CONTENT_TYPE
from ivr.runtime import current_settings


def stored_recording_response(recording: Recording) -> Response:
    """The recording's file with HTTP range support; 404 when it is not (or no longer) in storage."""
    if recording.state != RecordingState.STORED or not recording.path:
        abort(404, f"recording not stored ({recording.state.value})")
    root = current_settings().recordings_dir.resolve()
    path = (root / recording.path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        abort(404, "recording file missing from storage")
    response = send_file(
        path,
        mimetype=STORED_CONTENT_TYPE,  # fixed: what we stored, never what an upstream once claimed
        conditional=True,
        download_name=f"{recording.recording_sid}.wav",
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response
