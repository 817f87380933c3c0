"""QA through the API: a call's evaluation, and corrected transcripts (which re-score the call)."""

from __future__ import annotations

from typing import Any

from flask import abort, g, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from ivr.access import correction_access, evaluation_access
from ivr.api.views import api_principal, api_reader, blueprint, transcript_json
from ivr.audit import READ_EVALUATION, record_read
from ivr.corrections import NothingToCorrect, correct_transcript
from ivr.models import Call, Evaluation, Recording
from ivr.qa.evaluations import evaluation_of_call, transfer_recording
from ivr.qa.scorecard import effective_answers, load_form
from ivr.runtime import current_database, current_settings
from ivr.web.access import enforce


def evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    """Questions with the system's suggestion and evidence, the reviewer's final answer, the scores."""
    form = load_form()
    answers = effective_answers(evaluation.suggested, evaluation.final or {})
    return {
        "call_sid": evaluation.call.call_sid,
        "form": {"name": evaluation.form_name, "version": evaluation.form_version},
        "agent_number": evaluation.agent_number,
        "agent": evaluation.agent.username if evaluation.agent else None,
        "status": evaluation.status.value,
        "suggested_score": evaluation.suggested_score,
        "final_score": evaluation.final_score,
        "critical_failed": evaluation.critical_failed,
        "reviewer": evaluation.reviewer,
        "review_comment": evaluation.review_comment,
        "agent_comment": evaluation.agent_comment,
        "scored_at": evaluation.scored_at.isoformat(),
        "questions": [
            {
                "id": q.id,
                "text": q.text,
                "points": q.points,
                "critical": q.critical,
                "suggested": evaluation.suggested.get(q.id),
                "final": (evaluation.final or {}).get(q.id),
                "answer": answers.get(q.id),
            }
            for q in form.questions
        ],
    }


@blueprint.get("/calls/<call_sid>/evaluation")
def call_evaluation(call_sid: str) -> ResponseReturnValue:
    """The call's evaluation, for its subject and the reviewers (others: 403 whether or not it exists)."""
    with current_database().session() as session:
        evaluation = session.scalars(select(Evaluation).join(Evaluation.call).where(Call.call_sid == call_sid)).first()
        enforce(
            evaluation_access(api_principal(), evaluation),
            hidden="no evaluation for this call (only calls put through to a person are scored)",
            forbidden="an evaluation is for the staff member scored and for QA, managers and admins",
        )
        assert evaluation is not None
        recording = transfer_recording(evaluation.call)
        record_read(
            session,
            api_reader(session),
            READ_EVALUATION,
            call_sid=call_sid,
            recording_sid=recording.recording_sid if recording else None,
        )
        return jsonify(evaluation_json(evaluation))


@blueprint.put("/recordings/<sid>/transcripts/<int:channel>")
def correct_channel_transcript(sid: str, channel: int) -> ResponseReturnValue:
    """A person's corrected text for one channel; the machine words stay. Re-scores a transfer. A ticket's
    message: whoever may change the ticket; a transfer: the reviewers, not the staff member scored."""
    with current_database().session() as session:
        recording = session.scalars(select(Recording).where(Recording.recording_sid == sid)).first()
        if recording is None:
            abort(404, "no such recording")
        evaluation = evaluation_of_call(session, recording.call_id)
        enforce(
            correction_access(api_principal(), recording, evaluation),
            hidden="no such recording",
            forbidden="ticket messages are corrected by the night shift, managers, admins and the ticket's "
            "department; transfer recordings by QA, managers and admins, never by the staff "
            "member scored; service tokens correct nothing",
        )
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            abort(400, 'send JSON {"text": "…"}')
        try:
            transcript = correct_transcript(
                session, recording, channel, body["text"], g.api_staff.username, current_settings().property_name
            )
        except NothingToCorrect:
            abort(404, "no transcript for this recording and channel yet")
        evaluation = evaluation_of_call(session, recording.call_id)
        return jsonify(
            {
                "sid": sid,
                **transcript_json(transcript),
                "evaluation": evaluation_json(evaluation) if evaluation else None,
            }
        )
