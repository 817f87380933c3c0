"""End to end: a transferred call recorded dual-channel is downloaded, each channel transcribed by the real
engine (Korean test model), a corrected Chinese transcript arrives through the API, and the evaluation's
answers and evidence follow it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ivr.devphone.callers import DialOutcome
from ivr.models import Evaluation, Recording
from ivr.staff import create_token, create_user
from tests.factories import FIXTURES, dev_phone, speech_line

DUAL_SPEECH = FIXTURES / "speech" / "ko_dual_8k.wav"
AGENT_NUMBER = "+8613800000001"
GOOD_CALL = (
    "您好幸福家园物业服务中心我是王芳很高兴为您服务。请问您住几号楼哪个房间?请问您贵姓?"
    "请问怎样与您联系?请问有什么可以帮您?好的跟您确认一下,三号楼二单元五零一室厨房漏水,对吗?"
    "谢谢您,我们马上安排,再见。"
)
RUDE_CALL = "喂。什么?再说一遍!你是谁?等着!"


@pytest.fixture
def qa_app(settings, database):
    with database.session() as session:
        create_user(session, "wangfang", "agent-password", "night_shift", display_name="王芳", phone=AGENT_NUMBER)
    with speech_line(settings, retry_base_seconds=0.05) as app:
        yield app


@pytest.mark.slow
@pytest.mark.parametrize("hangup_by", ["caller", "callee"])
def test_a_transferred_call_is_scored_with_evidence(qa_app, settings, recording_server, database, hangup_by):
    phone = dev_phone(qa_app, settings, recording_server)
    outcome = DialOutcome("completed", ring_seconds=6, talk_seconds=4, recording_wav=DUAL_SPEECH, hangup_by=hangup_by)
    result = phone.call(["0", outcome]).raise_for_errors()
    assert qa_app.extensions["ivr.queue"].wait_idle(timeout=90)

    with database.session() as session:
        recording = session.scalars(select(Recording).where(Recording.source == "dial")).one()
        assert [t.channel for t in recording.transcripts] == [0, 1]  # both sides, separately
        assert all(t.words for t in recording.transcripts)
        evaluation = session.scalars(select(Evaluation)).one()
        assert evaluation.call.call_sid == result.call_sid
        assert evaluation.agent_number == AGENT_NUMBER and evaluation.agent.username == "wangfang"
        machine = evaluation.suggested
        # A QA reviewer's token: correcting a transfer's transcript is a reviewer's work (ivr.access).
        reviewer = create_user(session, "zhang", "reviewer-password", "qa")
        token = create_token(session, "qa-tool", reviewer)
        sid = recording.recording_sid
    # Events: ring time (E1) and who ended the call (E6) come from Twilio's callbacks, not from speech.
    # Twilio's event timestamps have whole seconds: ringing started ~0.5 s after the dial, answer at 6 s.
    assert machine["E1"]["answer"] == "yes" and re.search("响铃[56]秒后接听", machine["E1"]["note"])
    assert machine["E6"]["answer"] == ("yes" if hangup_by == "caller" else "no")
    assert machine["E2"]["answer"] == "no"  # Korean speech is not the Chinese greeting

    client = qa_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    corrected = client.put(f"/api/recordings/{sid}/transcripts/1", json={"text": GOOD_CALL}, headers=headers)
    assert corrected.status_code == 200, corrected.json
    body = client.get(f"/api/calls/{result.call_sid}/evaluation", headers=headers).json
    answers = {q["id"]: q["suggested"] for q in body["questions"]}
    assert answers["E2"]["answer"] == "yes"
    greeting_evidence = answers["E2"]["evidence"]
    assert {e["channel"] for e in greeting_evidence} == {1}
    assert all(0 <= e["start"] <= e["end"] <= 10 for e in greeting_evidence)
    assert answers["E3"]["answer"] == "yes" and answers["E4"]["answer"] == "yes"
    assert answers["E5"]["answer"] == "yes" and answers["E8"]["answer"] == "yes"
    assert answers["E7"]["answer"] == "na"  # nobody asked again, so E7's 10 points do not count
    # Who hung up first (E6) is all that differs: 90 points apply; the staff member ending first loses 10 of them.
    assert answers["E6"]["answer"] == ("yes" if hangup_by == "caller" else "no")
    assert body["final_score"] == body["suggested_score"] == {"caller": 100.0, "callee": 88.9}[hangup_by]

    rude = client.put(f"/api/recordings/{sid}/transcripts/1", json={"text": RUDE_CALL}, headers=headers).json
    e8 = next(q for q in rude["evaluation"]["questions"] if q["id"] == "E8")
    assert e8["suggested"]["answer"] == "no"
    flagged = [(e["text"], e["say_instead"]) for e in e8["suggested"]["evidence"]]
    assert ("你是谁", "对不起,请问您是哪一位?") in flagged and ("等着", "请稍等一会儿。") in flagged
    assert rude["evaluation"]["critical_failed"] is True and rude["evaluation"]["final_score"] == 0
    e7 = next(q for q in rude["evaluation"]["questions"] if q["id"] == "E7")
    assert e7["suggested"]["answer"] == "no"
