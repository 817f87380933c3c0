"""The transcription job: a stored recording becomes text (per channel, with timed words) on its ticket."""

from __future__ import annotations

from sqlalchemy import select

from ivr.jobs import JobContext, PermanentJobError, job
from ivr.models import Recording, RecordingState, Transcript
from ivr.qa.evaluations import evaluate_call_job
from ivr.speech.audio import UnreadableAudio
from ivr.speech.engine import SpeechEngine, SpeechModelError
from ivr.speech.live import TRANSCRIPTION_NICENESS, lower_thread_priority
from ivr.speech.status import speech_model_path
from ivr.tickets.operations import refresh_ticket_transcript


def transcription_failed(context: JobContext, recording_id: int, error: str) -> None:
    """Give-up hook: the audio stays; the recording is flagged for a person to transcribe."""
    with context.database.session() as session:
        recording = session.get(Recording, recording_id)
        if recording is not None:
            recording.needs_manual_transcription = True
            recording.transcription_error = error


@job("transcribe_recording", give_up=transcription_failed)
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
    # The caller is long gone: this waits behind the webhooks and the live takes of calls in progress.
    lower_thread_priority(TRANSCRIPTION_NICENESS)
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
            session.add(
                Transcript(
                    recording=recording,
                    channel=channel,
                    text=result.text,
                    raw_text=result.raw_text,
                    words=result.as_dict()["words"],
                    duration=result.duration,
                    model=model_path.name,
                )
            )
        recording.needs_manual_transcription = False
        recording.transcription_error = None
        session.flush()
        if recording.ticket is not None and recording.source == "message":
            refresh_ticket_transcript(session, recording.ticket)
        if recording.source == "dial":
            evaluate_call_job.schedule(session, recording.call_id)
