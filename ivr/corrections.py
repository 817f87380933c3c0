"""Corrections of what the machine heard: one operation for every recording, a ticket's message take and
a transfer's channel alike (no Flask). Who may correct what is ivr.access.correction_access.

A correction is kept beside the machine's text and timed words (`Transcript.corrected_text`); a ticket's text
is derived from its takes (`Ticket.text`), so correcting the take corrects the ticket. A transfer is re-scored:
the system's suggestions follow the corrected text, the reviewer's own answers stay.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ivr.models import Recording, RecordingSource, Ticket, Transcript
from ivr.qa.evaluations import evaluate_after_transcription
from ivr.tickets.events import record_event

MAX_CORRECTION_CHARS = 20000


class NothingToCorrect(LookupError):
    """The recording has no transcript on that channel yet (still being transcribed), so nothing to correct."""


def correction_target(ticket: Ticket) -> Recording | None:
    """The take the ticket page's correction goes to: the one the ticket's text comes from, else the latest
    message take that has a transcript or waits for a person to type it; None when there is none."""
    shown = ticket.text_transcript
    if shown is not None:
        return shown.recording
    takes = [r for r in ticket.recordings if r.source == RecordingSource.MESSAGE]
    if takes and (takes[-1].transcripts or takes[-1].needs_manual_transcription):
        return takes[-1]
    return None


def _transcript_to_correct(recording: Recording, channel: int, corrected: str) -> Transcript:
    transcript = next((t for t in recording.transcripts if t.channel == channel), None)
    if transcript is not None:
        return transcript
    # Transcription gave up: the person's text is the only transcript this channel will have.
    if corrected and recording.needs_manual_transcription and 0 <= channel < (recording.channels or 1):
        return Transcript(recording=recording, channel=channel, text="", raw_text="", words=[])
    raise NothingToCorrect(f"no transcript for recording {recording.recording_sid} channel {channel} yet")


def correct_transcript(
    session: Session, recording: Recording, channel: int, text: str, actor: str, property_name: str
) -> Transcript:
    """A person's text for one channel of a recording; the machine's text and words stay. Text equal to the
    machine's (or empty) clears the correction. On a ticket the change goes on its timeline; a transfer is
    re-scored. Raises NothingToCorrect when the channel has not been transcribed yet."""
    corrected = text.strip()[:MAX_CORRECTION_CHARS]
    transcript = _transcript_to_correct(recording, channel, corrected)
    before = transcript.current_text
    if corrected == before:
        return transcript
    transcript.corrected_text = corrected if corrected and corrected != transcript.text else None
    transcript.corrected_by = actor
    session.add(transcript)  # new when a person types what transcription could not
    if recording.ticket is not None:
        record_event(
            session,
            recording.ticket,
            "transcript_corrected",
            actor,
            recording=recording.recording_sid,
            channel=channel,
            before=before or None,
            after=corrected,
        )
    session.flush()
    evaluate_after_transcription(session, recording, property_name)
    return transcript
