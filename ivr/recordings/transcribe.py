"""The transcription job: a stored recording becomes text (per channel, with timed words) on its ticket."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from ivr.config import Settings
from ivr.jobs import JobContext, PermanentJobError, schedule_job
from ivr.models import Recording, RecordingState, Transcript
from ivr.speech.audio import UnreadableAudio
from ivr.speech.engine import SpeechEngine, SpeechModelError, model_is_loaded, resolve_model_path
from ivr.speech.model_store import model_layout_problems
from ivr.tickets.operations import refresh_ticket_transcript

EVALUATE_JOB = "evaluate_call"


def speech_model_path(settings: Settings) -> Path:
    """Where the configured Vosk model should be (it may not be installed)."""
    return resolve_model_path(settings.speech_model, settings.models_dir)


def speech_model_installed(settings: Settings) -> bool:
    return not model_layout_problems(speech_model_path(settings))


def speech_model_status(settings: Settings) -> str:
    """One line for /healthz, the log and the console: is the line transcribing messages?"""
    path = speech_model_path(settings)
    if speech_model_installed(settings):
        state = "loaded" if model_is_loaded(path) else "installed (loads with the first message)"
        return f"{state}: {path.name}"
    return (f"missing: {path} — messages are kept but not transcribed until a model is installed "
            "(`ivr models fetch`)")


def transcribe_recording(context: JobContext, recording_id: int) -> None:
    """Job handler: transcribe every channel of the stored audio; keep words, update the ticket."""
    settings = context.settings
    with context.database.session() as session:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.transcripts:
            return
        if recording.state != RecordingState.STORED or not recording.path:
            raise PermanentJobError(f"recording is not stored ({recording.state.value})")
        audio_path = settings.recordings_dir / recording.path

    model_path = speech_model_path(settings)
    try:
        engine = SpeechEngine.from_path(model_path)
        results = engine.transcribe_audio(audio_path)
    except (SpeechModelError, UnreadableAudio) as exc:
        raise PermanentJobError(str(exc)) from exc

    with context.database.session() as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        if session.scalars(select(Transcript.id).where(Transcript.recording_id == recording_id)).first():
            return  # another worker finished first
        for channel, result in enumerate(results):
            session.add(Transcript(
                recording=recording, channel=channel, text=result.text, raw_text=result.raw_text,
                words=result.as_dict()["words"], duration=result.duration, model=model_path.name,
            ))
        recording.needs_manual_transcription = False
        recording.transcription_error = None
        session.flush()
        if recording.ticket is not None and recording.source == "message":
            refresh_ticket_transcript(session, recording.ticket)
        if recording.source == "dial":
            schedule_job(session, EVALUATE_JOB, recording.call_id)


def transcription_failed(context: JobContext, recording_id: int, error: str) -> None:
    """Give-up hook: the audio stays; the recording is flagged for a person to transcribe."""
    with context.database.session() as session:
        recording = session.get(Recording, recording_id)
        if recording is not None:
            recording.needs_manual_transcription = True
            recording.transcription_error = error
