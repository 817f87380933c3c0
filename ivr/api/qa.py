"""QA through the API: a call's evaluation, and corrected transcripts (which re-score the call)."""

from __future__ import annotations

from typing import Any

from flask import abort, g, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from ivr.api.views import blueprint
from ivr.models import Call, Evaluation, Recording, Transcript
from ivr.qa.evaluations import correct_channel
from ivr.qa.scorecard import effective_answers, load_form
from ivr.runtime import current_database, current_settings

MAX_TRANSCRIPT_CHARS = 20000


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
                "id": q.id, "text": q.text, "points": q.points, "critical": q.critical,
                "suggested": evaluation.suggested.get(q.id),
                "final": (evaluation.final or {}).get(q.id),
                "answer": answers.get(q.id),
            }
            for q in form.questions
        ],
    }


@blueprint.get("/calls/<call_sid>/evaluation")
def call_evaluation(call_sid: str) -> ResponseReturnValue:
    if g.api_staff is not None and g.api_staff.role not in ("qa", "manager", "admin", "night_shift"):
        abort(403, "QA results are for QA, managers and the night shift")
    with current_database().session() as session:
        evaluation = session.scalars(select(Evaluation).join(Evaluation.call).where(Call.call_sid == call_sid)).first()
        if evaluation is None:
            abort(404, "no evaluation for this call (only calls put through to a person are scored)")
        return jsonify(evaluation_json(evaluation))


@blueprint.put("/recordings/<sid>/transcripts/<int:channel>")
def correct_channel_transcript(sid: str, channel: int) -> ResponseReturnValue:
    """A person's corrected text for one channel; the machine words stay. Re-scores a transfer."""
    if g.api_staff is not None and g.api_staff.role == "department":
        abort(403, "departments cannot correct transcripts")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        abort(400, 'send JSON {"text": "…"}')
    text = body["text"].strip()[:MAX_TRANSCRIPT_CHARS]
    who = g.api_staff.username if g.api_staff is not None else f"api-token-{g.api_token_id}"
    with current_database().session() as session:
        transcript = session.scalars(
            select(Transcript).join(Transcript.recording)
            .where(Recording.recording_sid == sid, Transcript.channel == channel)).first()
        if transcript is None:
            abort(404, "no transcript for this recording and channel yet")
        correct_channel(session, transcript, text, who, current_settings().property_name)
        evaluation = session.scalars(
            select(Evaluation).where(Evaluation.call_id == transcript.recording.call_id)).first()
        return jsonify({"sid": sid, "channel": channel, "text": transcript.corrected_text,
                        "evaluation": evaluation_json(evaluation) if evaluation else None})
