"""Staff call-backs from the console (回拨) through the dev phone: the staff member's phone rings first, then the
resident's with the property's number, both sides recorded dual-channel; the meal-time warning and its reason;
every way it can fail to connect; and the call scored like a transfer with the outbound greeting (E2)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ivr import create_app
from ivr.db import frozen_clock
from ivr.devphone.callers import SILENCE, DialOutcome
from ivr.followup.call_back import NOT_REACHED, place_call_back
from ivr.jobs import JobContext
from ivr.models import CallBack, CallBackState, Evaluation, Job, JobState, Recording, Ticket, TicketEvent
from ivr.staff import create_token, create_user
from ivr.telephony.prompts import prompt
from ivr.telephony.steps import ticket_number_spoken
from tests.factories import FIXTURES, PASSWORD, create_ticket, csrf_from, dev_phone, login, speech_line

SHANGHAI = ZoneInfo("Asia/Shanghai")
RESIDENT = "+8613900001111"
STAFF_PHONE = "+8613800000001"
LINE_NUMBER = "+861062345678"
DUAL_SPEECH = FIXTURES / "speech" / "ko_dual_8k.wav"
GOOD_CALL_BACK = (
    "您好,这里是幸福家园物业服务中心,我是王芳。您反映的厨房漏水已经修好了,请问现在还漏吗?"
    "好的,跟您确认一下,问题已经解决,对吗?谢谢您,再见。"
)


def at(clock: str, day: str = "2026-12-01") -> datetime:
    """A local (Shanghai) time of a Tuesday, as UTC."""
    return datetime.fromisoformat(f"{day} {clock}").replace(tzinfo=SHANGHAI).astimezone(UTC)


@pytest.fixture
def line_settings(settings, recording_server):
    """Twilio's REST API is the dev phone's server; the default property calls from IVR_SMS_FROM."""
    return replace(settings, twilio_api_url=recording_server.base_url, sms_from=LINE_NUMBER)


@pytest.fixture
def line_app(line_settings):
    app = create_app(line_settings, retry_base_seconds=0.05, retry_cap_seconds=0.2)
    yield app
    app.extensions["ivr.database"].dispose()


@pytest.fixture
def staff(database):
    with database.session() as session:
        create_user(session, "wangfang", PASSWORD, "night_shift", display_name="王芳", phone=STAFF_PHONE)
        create_user(session, "nophone", PASSWORD, "night_shift", display_name="李娜")
    return "wangfang"


@pytest.fixture
def console(line_app, staff):
    client = line_app.test_client()
    login(client, staff)
    return client


def ask(console, ticket_id: int, reason: str = ""):
    token = csrf_from(console, f"/console/tickets/{ticket_id}")
    return console.post(f"/console/tickets/{ticket_id}/call-back", data={"csrf_token": token, "reason": reason})


def place(line_settings, database) -> None:
    """What the worker does: every queued placement job, once."""
    context = JobContext(line_settings, database)
    with database.session() as session:
        queued = session.execute(
            select(Job.id, Job.subject_id).where(Job.kind == place_call_back.name, Job.state == JobState.QUEUED)
        ).all()
    for job_id, call_back_id in queued:
        place_call_back.run(context, call_back_id)
        with database.session() as session:
            session.get(Job, job_id).state = JobState.DONE


def placed_call_back(console, database, recording_server, line_settings, ticket_id: int):
    """Ask for a call-back at 10:00 (inside a window) and let the worker place it: the call Twilio was asked for."""
    with frozen_clock(at("10:00")):
        ask(console, ticket_id)
        place(line_settings, database)
    [placed] = recording_server.placed_calls
    return placed


def call_backs(database) -> list[CallBack]:
    with database.session(read_only=True) as session:
        found = list(session.scalars(select(CallBack).order_by(CallBack.id)))
        for each in found:
            _ = each.call, each.user
        return found


def words(html: str) -> str:
    """The page's text without its tags."""
    return re.sub(r"<[^>]+>", "", html)


def page(console, ticket_id: int) -> str:
    return console.get(f"/console/tickets/{ticket_id}").get_data(as_text=True)


def test_a_call_back_rings_the_staff_member_then_the_resident_and_records_both_sides(
    console, database, recording_server, line_settings, line_app
):
    ticket_id = create_ticket(database, caller=RESIDENT, room="3-2-501")
    with frozen_clock(at("10:00")):
        assert "call-back-warning" not in page(console, ticket_id)  # in a call window: no warning, no reason
        answer = ask(console, ticket_id)
        place(line_settings, database)
    assert answer.status_code == 302
    [placed] = recording_server.placed_calls
    assert (placed.to, placed.from_) == (STAFF_PHONE, LINE_NUMBER)  # the staff member first, from the 物业's number
    assert placed.url.startswith(line_settings.public_url + "/twilio/call-back/staff?")
    assert placed.machine_detection == ""  # the staff member expects the call

    phone = dev_phone(line_app, line_settings, recording_server)
    outcome = DialOutcome("completed", ring_seconds=8, talk_seconds=40, hangup_by="callee")
    with frozen_clock(at("10:01")):
        result = phone.answer_outbound(placed, ["1", outcome]).raise_for_errors()

    with database.session(read_only=True) as session:
        number = session.get(Ticket, ticket_id).number
    spoken = ticket_number_spoken(number)
    assert result.said[:2] == [
        prompt("call_back_press_one", ticket_number_spoken=spoken, room="3-2-501"),
        prompt("call_back_connecting"),
    ]
    dial = result.last("dial")
    assert dial.params["DialCallStatus"] == "completed"
    document = result.requests_of("gather")[0].body
    assert f'callerId="{LINE_NUMBER}"' in document and 'record="record-from-answer-dual"' in document
    assert f">{RESIDENT}</Number>" in document
    assert result.said[-1] == prompt("call_back_resident_gone")  # the resident hung up; the staff member is told

    [call_back] = call_backs(database)
    assert call_back.state == CallBackState.DONE and call_back.outcome == "已通话40秒"
    assert call_back.call.call_sid == result.call_sid and not call_back.outside_window
    with database.session(read_only=True) as session:
        recording = session.scalars(select(Recording).where(Recording.call_id == call_back.call_id)).one()
        assert recording.source == "dial" and recording.ticket_id is None  # heard by QA rules, like a transfer
        kinds = [e.kind for e in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id))]
    assert kinds[-2:] == ["call_back_requested", "call_back_done"]
    shown = page(console, ticket_id)
    assert "已通话(已通话40秒)" in words(shown) and "王芳" in shown


def test_at_a_meal_time_the_button_warns_and_a_reason_is_required(console, database, line_settings):
    ticket_id = create_ticket(database, caller=RESIDENT)
    with frozen_clock(at("12:10")):
        shown = page(console, ticket_id)
        assert "现在是用餐时间(11:30-13:30),打电话到居民住家应避免吃饭的时间" in shown
        assert re.search(r'<input name="reason" required', shown) and "仍要回拨" in shown
        ask(console, ticket_id)  # no reason: refused, nothing queued
        assert call_backs(database) == []
        assert "如确需现在回拨,请填写原因" in page(console, ticket_id)
        ask(console, ticket_id, "住户  要求午间回电")
    [call_back] = call_backs(database)
    assert call_back.outside_window and call_back.reason == "住户 要求午间回电"
    with database.session(read_only=True) as session:
        event = session.scalars(select(TicketEvent).where(TicketEvent.kind == "call_back_requested")).one()
    assert event.detail["reason"] == "住户 要求午间回电" and "用餐时间" in event.detail["outside_window"]


def test_at_night_the_warning_says_it_is_rest_time(console, database):
    ticket_id = create_ticket(database, caller=RESIDENT)
    with frozen_clock(at("23:30")):
        assert "现在是休息时间,不宜打电话到居民住家" in page(console, ticket_id)


@pytest.mark.parametrize(
    ("staff_outcome", "dial", "state_text", "staff_hears"),
    [
        ("no-answer", None, "您的电话未接听", None),
        ("busy", None, "您的电话占线", None),
        ("completed", DialOutcome("no-answer", ring_seconds=40), "住户未接听", "住户未接听"),
        ("completed", DialOutcome("busy"), "住户占线", "住户占线"),
    ],
)
def test_a_call_back_that_does_not_connect_says_why(
    console, database, recording_server, line_settings, line_app, staff_outcome, dial, state_text, staff_hears
):
    ticket_id = create_ticket(database, caller=RESIDENT)
    placed = placed_call_back(console, database, recording_server, line_settings, ticket_id)
    phone = dev_phone(line_app, line_settings, recording_server)
    with frozen_clock(at("10:01")):
        result = phone.answer_outbound(placed, ["1", dial] if dial else [], outcome=staff_outcome).raise_for_errors()
    [call_back] = call_backs(database)
    assert (call_back.state, call_back.outcome) == (CallBackState.FAILED, state_text)
    if staff_hears:
        assert result.said[-1] == prompt("call_back_not_connected", outcome=staff_hears)
    with frozen_clock(at("10:02")):
        shown = page(console, ticket_id)
    assert f"未接通({state_text})" in words(shown) and 'action="/console/tickets/' in shown  # may be asked again


def test_a_voicemail_that_answers_the_staff_phone_is_not_put_through_to_the_resident(
    console, database, recording_server, line_settings, line_app
):
    ticket_id = create_ticket(database, caller=RESIDENT)
    placed = placed_call_back(console, database, recording_server, line_settings, ticket_id)
    phone = dev_phone(line_app, line_settings, recording_server)
    with frozen_clock(at("10:01")):
        result = phone.answer_outbound(placed, [SILENCE]).raise_for_errors()  # a voicemail greeting, no key
    assert result.requests_of("dial") == [] and result.said[-1] == prompt("call_back_cancelled")
    [call_back] = call_backs(database)
    assert (call_back.state, call_back.outcome) == (CallBackState.FAILED, "您未按1确认,回拨已取消")


def test_a_call_back_needs_the_staff_members_phone_and_a_callable_resident(console, line_app, database):
    no_number = create_ticket(database, caller="anonymous")
    ticket_id = create_ticket(database, caller=RESIDENT)
    with frozen_clock(at("10:00")):
        assert "来电号码无法回拨" in page(console, no_number)
        ask(console, no_number)
        other = line_app.test_client()
        login(other, "nophone")
        assert "您的账号没有登记电话" in page(other, ticket_id)
        ask(other, ticket_id)
    assert call_backs(database) == []


def test_one_call_back_at_a_time_per_ticket(console, database, line_settings):
    ticket_id = create_ticket(database, caller=RESIDENT)
    with frozen_clock(at("10:00")):
        ask(console, ticket_id)
        ask(console, ticket_id)
        assert "王芳的回拨正在进行中" in page(console, ticket_id)
    assert len(call_backs(database)) == 1


def test_two_requests_at_once_make_one_call_back(console, database, line_settings, monkeypatch):
    """The race the page's check cannot see (two clicks, two staff members at once): the database's unique index
    over call-backs under way lets one through; the other is refused with a message."""
    from ivr.followup import call_back

    ticket_id = create_ticket(database, caller=RESIDENT)
    with frozen_clock(at("10:00")):
        ask(console, ticket_id)
        monkeypatch.setattr(call_back, "call_back_under_way", lambda session, ticket, now: None)  # both saw none
        ask(console, ticket_id)
        monkeypatch.undo()
        assert "已有回拨正在进行,请稍候" in page(console, ticket_id)
    assert len(call_backs(database)) == 1


def test_a_call_back_that_never_reported_back_holds_up_no_later_one(console, database, line_settings):
    ticket_id = create_ticket(database, caller=RESIDENT)
    with frozen_clock(at("10:00")):
        ask(console, ticket_id)
        place(line_settings, database)  # the phone rang; no status callback ever came
    with frozen_clock(at("10:31")):
        assert 'action="/console/tickets/' in page(console, ticket_id)
        ask(console, ticket_id)
    first, second = call_backs(database)
    assert (first.state, first.outcome) == (CallBackState.FAILED, "未收到通话结果")
    assert second.state == CallBackState.CALLING_STAFF or second.state == CallBackState.QUEUED


def test_a_request_the_queue_placed_late_is_not_placed(console, database, recording_server, line_settings):
    ticket_id = create_ticket(database, caller=RESIDENT)
    with frozen_clock(at("10:00")):
        ask(console, ticket_id)
    with frozen_clock(at("10:05")):  # the worker was down for five minutes
        place(line_settings, database)
    assert recording_server.placed_calls == []
    [call_back] = call_backs(database)
    assert call_back.state == CallBackState.FAILED and "排队超时" in call_back.outcome


def test_twilio_out_of_reach_ends_the_call_back_instead_of_ringing_later(
    console, database, recording_server, line_settings
):
    ticket_id = create_ticket(database, caller=RESIDENT)
    recording_server.fail_next("Calls", status=503)
    with frozen_clock(at("10:00")):
        ask(console, ticket_id)
        place(line_settings, database)
    [call_back] = call_backs(database)
    assert (call_back.state, call_back.outcome) == (CallBackState.FAILED, NOT_REACHED)


def test_a_late_answer_of_a_call_back_that_is_over_hangs_up(
    console, database, recording_server, line_settings, line_app
):
    ticket_id = create_ticket(database, caller=RESIDENT)
    placed = placed_call_back(console, database, recording_server, line_settings, ticket_id)
    phone = dev_phone(line_app, line_settings, recording_server)
    with frozen_clock(at("10:01")):
        phone.answer_outbound(placed, ["1", DialOutcome("completed", talk_seconds=5)]).raise_for_errors()
        again = phone.answer_outbound(placed, []).raise_for_errors()  # Twilio retried the answer webhook
    assert again.said == [prompt("call_back_over")]
    assert len(recording_server.placed_calls) == 1 and call_backs(database)[0].state == CallBackState.DONE


@pytest.fixture
def qa_line_app(line_settings):
    """The line with the real speech engine (Korean test model), calls allowed all day; the test starts its worker
    (download, transcribe, score) once the staff member has logged in and asked: two CI runs of 8 saw that log-in
    meet "database is locked" while the worker started (not diagnosed yet; see the closing note)."""
    settings = replace(line_settings, call_windows="00:00-24:00")
    with speech_line(settings, start_worker=False, retry_base_seconds=0.05) as app:
        yield app


@pytest.mark.slow
@pytest.mark.parametrize("hangup_by", ["callee", "caller"])
def test_a_call_back_is_scored_like_a_transfer_with_the_outbound_greeting(
    qa_line_app, database, recording_server, line_settings, staff, hangup_by
):
    ticket_id = create_ticket(database, caller=RESIDENT, room="3-2-501", transcript="厨房漏水")
    console = qa_line_app.test_client()
    login(console, staff)
    ask(console, ticket_id)
    qa_line_app.extensions["ivr.queue"].start_embedded(workers=2)
    assert qa_line_app.extensions["ivr.queue"].wait_idle(timeout=30)
    [placed] = recording_server.placed_calls
    phone = dev_phone(qa_line_app, line_settings, recording_server)
    outcome = DialOutcome("completed", ring_seconds=6, talk_seconds=4, recording_wav=DUAL_SPEECH, hangup_by=hangup_by)
    result = phone.answer_outbound(placed, ["1", outcome]).raise_for_errors()
    assert qa_line_app.extensions["ivr.queue"].wait_idle(timeout=90)

    with database.session() as session:
        evaluation = session.scalars(select(Evaluation)).one()
        assert evaluation.call.call_sid == result.call_sid
        assert evaluation.agent.username == "wangfang" and evaluation.agent_number == STAFF_PHONE
        recording = session.scalars(select(Recording).where(Recording.source == "dial")).one()
        assert [t.channel for t in recording.transcripts] == [0, 1]
        reviewer = create_user(session, "zhang", "reviewer-password", "qa")
        token = create_token(session, "qa-tool", reviewer)
        sid = recording.recording_sid
    machine = evaluation.suggested
    assert machine["E1"]["answer"] == "na" and "回拨" in machine["E1"]["note"]  # nothing rang for them to answer
    # The resident hanging up first is the standard (E6); the parent leg here is the staff member's.
    assert machine["E6"]["answer"] == ("yes" if hangup_by == "callee" else "no")
    assert machine["E6"]["note"] == ("住户先挂断" if hangup_by == "callee" else "值班人员先挂断")

    client = qa_line_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    # The staff member's leg is the first channel of a call-back.
    corrected = client.put(f"/api/recordings/{sid}/transcripts/0", json={"text": GOOD_CALL_BACK}, headers=headers)
    assert corrected.status_code == 200, corrected.json
    body = client.get(f"/api/calls/{result.call_sid}/evaluation", headers=headers).json
    answers = {q["id"]: q["suggested"] for q in body["questions"]}
    assert answers["E2"]["answer"] == "yes" and answers["E2"]["note"].startswith("回拨问候完整")
    assert answers["E4"]["answer"] == "yes"

    shown = console.get(f"/console/tickets/{ticket_id}").get_data(as_text=True)
    assert f"/console/qa/calls/{result.call_sid}" in shown  # the staff member may read their own call's score
    qa_page = console.get(f"/console/qa/calls/{result.call_sid}").get_data(as_text=True)
    assert "回拨通话质检" in qa_page and f"回拨住户</dt><dd>{RESIDENT}" in qa_page
    assert qa_page.index("<h3>值班人员</h3>") < qa_page.index("<h3>住户</h3>")  # channel 0 is the staff member's
