"""Evaluations of transferred calls: gather the facts from the database, run the rules, keep the
suggestions apart from the reviewer's final answers, re-score when a transcript is corrected (ivr.corrections)."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.db import utcnow
from ivr.followup.call_back import call_back_of
from ivr.jobs import JobContext, job
from ivr.models import Call, CallBack, CallEvent, Evaluation, EvaluationStatus, Recording, Ticket, User
from ivr.properties import property_directory
from ivr.qa.rules import RULES, CallFacts, EventFact
from ivr.qa.scorecard import ANSWERS, Form, effective_answers, load_form, score
from ivr.qa.speech import CHANNEL_NAMES, ChannelSpeech

STAFF_CHANNEL = 1  # record-from-answer-dual: the first channel is the caller's leg, the second the dialled one
# A staff call-back (回拨) is the other way round: the staff member's leg called first, the resident was dialled.
CALL_BACK_STAFF_CHANNEL = 0
DIAL_RESULTS = ("dial-result", "call-back/dial-result")  # the Dial actions of a transfer and of a call-back


class ReviewError(ValueError):
    """A review or response that cannot be accepted (message in Chinese)."""


def _event_time(event: CallEvent) -> datetime:
    stamp = event.params.get("Timestamp")
    if stamp:
        try:
            return parsedate_to_datetime(stamp)
        except (TypeError, ValueError):
            pass
    return event.at


def transfer_recording(call: Call) -> Recording | None:
    """The dual-channel recording of the call's transfer, if there was one."""
    return next((r for r in reversed(call.recordings) if r.source == "dial"), None)


def evaluation_of_call(session: Session, call_id: int) -> Evaluation | None:
    """The call's evaluation, if it was put through to a person and scored."""
    return session.scalars(select(Evaluation).where(Evaluation.call_id == call_id)).first()


def channel_names(session: Session, call: Call) -> dict[int, str]:
    """Whose voice each channel of the call's recording is, for people reading the transcripts."""
    if call_back_of(session, call.id) is not None:
        return {CALL_BACK_STAFF_CHANNEL: "值班人员", 1 - CALL_BACK_STAFF_CHANNEL: "住户"}
    return CHANNEL_NAMES


def call_facts(session: Session, call: Call, property_name: str) -> tuple[CallFacts, str | None, User | None]:
    """What the rules need, plus the number that answered and its staff account. The centre's name is the
    call's property's (`property_name` when the property leaves it to the settings)."""
    property_name = property_directory(session).stored(call.property_id).name or property_name
    call_back = call_back_of(session, call.id)
    if call_back is not None:
        return _call_back_facts(call, call_back, property_name), call_back.staff_phone, call_back.user
    started = call.started_at
    dial_events = [e for e in call.events if e.endpoint == "dial-status"]
    legs: dict[str, dict[str, CallEvent]] = {}
    for event in dial_events:
        legs.setdefault(event.params.get("CallSid", ""), {})[event.params.get("CallStatus", "")] = event
    answered_leg = next((leg for leg in legs.values() if "in-progress" in leg), None)
    ring_seconds = None
    ring_facts = []
    agent_number = None
    if answered_leg is not None:
        answered = answered_leg["in-progress"]
        rang = answered_leg.get("ringing") or answered_leg.get("initiated") or answered
        ring_seconds = max((_event_time(answered) - _event_time(rang)).total_seconds(), 0.0)
        agent_number = answered.params.get("To") or answered.params.get("Called")
        ring_facts = [
            EventFact(f"开始响铃 {agent_number}", (_event_time(rang) - started).total_seconds()),
            EventFact(f"接听 {agent_number}", (_event_time(answered) - started).total_seconds()),
        ]
    ended_by, ended_fact = _who_ended(call, call_back=False)
    channels = _channels(call)
    agent = None
    if agent_number:
        agent = session.scalars(select(User).where(User.phone == agent_number)).first()
    record = _on_ticket(call.ticket)
    facts = CallFacts(
        property_name=property_name,
        agent_name=(agent.display_name if agent else None),
        staff=channels.get(STAFF_CHANNEL),
        caller=channels.get(0),
        transferred=bool(dial_events or _dial_result(call)),
        ring_seconds=ring_seconds,
        ring_facts=ring_facts,
        ended_by=ended_by,  # type: ignore[arg-type]
        ended_fact=ended_fact,
        record=record,
    )
    return facts, agent_number, agent


def _on_ticket(ticket: Ticket | None) -> dict[str, bool]:
    """What of the record (E3) the ticket holds."""
    return {
        "room": bool(ticket and ticket.room),
        "name": bool(ticket and ticket.caller_name),
        "phone": bool(ticket and ticket.caller_number),
        "matter": bool(ticket and ticket.text),
    }


def _dial_result(call: Call) -> CallEvent | None:
    return next((e for e in reversed(call.events) if e.endpoint in DIAL_RESULTS), None)


# Who hung up first, by whether the first leg was gone when the Dial's action came: (transfer, call-back)
ENDED = {
    True: (("caller", "来电人挂断"), ("staff", "值班人员挂断(住户仍在线)")),
    False: (("staff", "值班人员挂断(来电人仍在线)"), ("caller", "住户挂断")),
}


def _who_ended(call: Call, *, call_back: bool) -> tuple[str | None, EventFact | None]:
    """Which side ended a talk, from the Dial's action: CallStatus is the first leg's, still on the line when the
    dialled side hung up. A transfer's first leg is the caller's; a call-back's, the staff member's."""
    dial_result = _dial_result(call)
    if dial_result is None or dial_result.params.get("DialCallStatus") != "completed":
        return None, None
    first_gone = dial_result.params.get("CallStatus") == "completed"
    ended_by, what = ENDED[first_gone][call_back]
    return ended_by, EventFact(what, (dial_result.at - call.started_at).total_seconds())


def _channels(call: Call) -> dict[int, ChannelSpeech]:
    recording = transfer_recording(call)
    return {
        t.channel: ChannelSpeech.from_words(t.channel, t.words, t.corrected_text)
        for t in (recording.transcripts if recording else [])
    }


def _call_back_facts(call: Call, call_back: CallBack, property_name: str) -> CallFacts:
    """A staff call-back: the staff member placed it (no ring to answer, E1 N/A), their leg is the first channel;
    the call ended first by the resident when the Dial's action found the staff member still on the line."""
    ended_by, ended_fact = _who_ended(call, call_back=True)
    channels = _channels(call)
    ticket = call_back.ticket
    return CallFacts(
        property_name=property_name,
        agent_name=call_back.user.display_name,
        staff=channels.get(CALL_BACK_STAFF_CHANNEL),
        caller=channels.get(1 - CALL_BACK_STAFF_CHANNEL),
        transferred=True,
        ring_seconds=None,
        call_back=True,
        ended_by=ended_by,  # type: ignore[arg-type]
        ended_fact=ended_fact,
        record=_on_ticket(ticket),
    )


def suggest(form: Form, facts: CallFacts) -> dict[str, Any]:
    """The system's answer and evidence for every question."""
    return {question.id: RULES[question.rule](facts).as_dict() for question in form.questions}


def evaluate_call(session: Session, call: Call, property_name: str, form: Form | None = None) -> Evaluation | None:
    """Create or refresh the call's evaluation (only calls that were put through to a person)."""
    form = form or load_form()
    facts, agent_number, agent = call_facts(session, call, property_name)
    if not facts.transferred:
        return None
    evaluation = session.scalars(select(Evaluation).where(Evaluation.call_id == call.id)).first()
    if evaluation is None:
        evaluation = Evaluation(
            call=call, property_id=call.property_id, form_name=form.name, form_version=form.version, final={}
        )
        session.add(evaluation)
    evaluation.agent_number = agent_number
    evaluation.agent = agent
    evaluation.suggested = suggest(form, facts)
    evaluation.scored_at = utcnow()
    _rescore(form, evaluation)
    session.flush()
    return evaluation


def _rescore(form: Form, evaluation: Evaluation) -> None:
    suggested_only = score(form, effective_answers(evaluation.suggested, {}))
    final = score(form, effective_answers(evaluation.suggested, evaluation.final or {}))
    evaluation.suggested_score = suggested_only.score
    evaluation.final_score = final.score
    evaluation.critical_failed = final.critical_failed


def review(
    session: Session,
    evaluation: Evaluation,
    reviewer: str,
    answers: dict[str, dict[str, str]],
    comment: str | None = None,
) -> None:
    """A QA reviewer agrees with or overrides answers; an override needs a comment."""
    form = load_form()
    known = {q.id for q in form.questions}
    final = dict(evaluation.final or {})
    for qid, item in answers.items():
        if qid not in known or item.get("answer") not in ANSWERS:
            raise ReviewError(f"无效的评分项 {qid}")
        suggested = evaluation.suggested.get(qid, {}).get("answer")
        note = (item.get("comment") or "").strip()
        if item["answer"] != suggested and not note:
            raise ReviewError(f"{qid} 改判需要填写说明")
        if item["answer"] == suggested and not note:
            final.pop(qid, None)
            continue
        final[qid] = {"answer": item["answer"], "comment": note, "by": reviewer, "at": utcnow().isoformat()}
    evaluation.final = final
    evaluation.reviewer = reviewer
    evaluation.reviewed_at = utcnow()
    evaluation.review_comment = (comment or "").strip() or evaluation.review_comment
    evaluation.status = EvaluationStatus.REVIEWED
    _rescore(form, evaluation)
    session.flush()


def respond(session: Session, evaluation: Evaluation, agent: User, accept: bool, comment: str | None) -> None:
    """The staff member acknowledges or disputes their evaluation (a dispute needs a reason)."""
    if evaluation.agent_user_id != agent.id:
        raise ReviewError("只能回应自己的评分")
    if not accept and not (comment or "").strip():
        raise ReviewError("申诉需要说明理由")
    evaluation.status = EvaluationStatus.ACKNOWLEDGED if accept else EvaluationStatus.DISPUTED
    evaluation.agent_comment = (comment or "").strip() or None
    session.flush()


def evaluate_after_transcription(session: Session, recording: Recording, property_name: str) -> None:
    """Once a transfer's channels are transcribed (or corrected), (re)score its call."""
    if recording.source == "dial":
        evaluate_call(session, recording.call, property_name)


def evaluation_failed(context: JobContext, call_id: int, error: str) -> None:
    """Give-up hook: nothing to undo; the job row keeps the error for the timeline and the QA list."""


@job("evaluate_call", give_up=evaluation_failed)
def evaluate_call_job(context: JobContext, call_id: int) -> None:
    """Job handler: score a transferred call after its recording is transcribed."""
    with context.database.session() as session:
        call = session.get(Call, call_id)
        if call is not None:
            evaluate_call(session, call, context.settings.property_name)
