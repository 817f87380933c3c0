"""Follow-up calls (回访) from the resolved ticket to its result, through the dev phone: never outside a call
window, the resident's answers on the ticket (closed, reopened), the opt-out kept, retries, machines."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from ivr.db import frozen_clock
from ivr.devphone.callers import SILENCE, Message
from ivr.followup.calls import (
    FollowUpCallRefused,
    call_back_by_hand,
    place_follow_up_call,
    queue_due_follow_ups,
)
from ivr.jobs import JobContext
from ivr.models import (
    Category,
    FollowUp,
    FollowUpOptOut,
    FollowUpState,
    Job,
    JobState,
    Notice,
    Recording,
    Role,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from ivr.properties import save_property
from ivr.telephony import outbound
from ivr.telephony.prompts import prompt
from ivr.telephony.spool import Spool
from ivr.tickets import procedure
from ivr.tickets.timeline import timeline
from tests.factories import HELLO_WAV, create_ticket

SHANGHAI = ZoneInfo("Asia/Shanghai")
RESIDENT = "+8613900001111"
LINE_NUMBER = "+861062345678"
DAY = "2026-12-01"  # a Tuesday


def at(clock: str, day: str = DAY) -> datetime:
    """A local (Shanghai) time of the test day, as UTC."""
    return datetime.fromisoformat(f"{day} {clock}").replace(tzinfo=SHANGHAI).astimezone(UTC)


@pytest.fixture
def context(settings, database, recording_server) -> JobContext:
    """What the placement job gets: Twilio's REST API is the dev phone's server; the default property has no
    number of its own, so it calls from IVR_SMS_FROM."""
    return JobContext(replace(settings, twilio_api_url=recording_server.base_url, sms_from=LINE_NUMBER), database)


def resolved_ticket(database, when: str, *, category: Category = Category.REPAIR, caller: str = RESIDENT, **fields):
    """A ticket taken through the procedure until it is ready for its follow-up (complaints: replied)."""
    ticket_id = create_ticket(database, category=category, caller=caller, **fields)
    with frozen_clock(at(when)), database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        procedure.dispatch(session, ticket, "wang", "工程部", "李工")
        procedure.start_work(session, ticket, "gong")
        if category == Category.COMPLAINT:
            procedure.write_analysis(session, ticket, "gong", "保洁未按时清运", "张经理")
        procedure.resolve(session, ticket, "gong")
        if category == Category.COMPLAINT:
            procedure.reply_to_caller(session, ticket, "wang", "已安排每日清运")
    return ticket_id


def work(context: JobContext, when: str, day: str = DAY) -> None:
    """What the worker does at that moment: the sweep, then every queued placement job (with a fixed clock)."""
    with frozen_clock(at(when, day)):
        queue_due_follow_ups(context)
        with context.database.session() as session:
            queued = session.execute(
                select(Job.id, Job.subject_id).where(
                    Job.kind == place_follow_up_call.name, Job.state == JobState.QUEUED
                )
            ).all()
        for job_id, follow_up_id in queued:
            place_follow_up_call.run(context, follow_up_id)
            with context.database.session() as session:
                session.get(Job, job_id).state = JobState.DONE


def follow_up_of(database, ticket_id: int) -> FollowUp:
    with database.session(read_only=True) as session:
        found = session.scalars(select(FollowUp).where(FollowUp.ticket_id == ticket_id).order_by(FollowUp.id)).all()
        assert found, "no follow-up was scheduled"
        return found[-1]


def ticket_of(database, ticket_id: int) -> Ticket:
    with database.session(read_only=True) as session:
        ticket = session.get(Ticket, ticket_id)
        _ = ticket.events, ticket.call
        return ticket


def test_a_call_due_at_noon_goes_out_at_half_past_one(context, database, recording_server, settings):
    ticket_id = resolved_ticket(database, "12:00")
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.due_at, follow_up.phone) == (FollowUpState.SCHEDULED, at("12:00"), RESIDENT)

    work(context, "12:00")  # the job queued by the resolve step: lunch time, nobody is called
    assert recording_server.placed_calls == []
    assert follow_up_of(database, ticket_id).due_at == at("13:30")
    work(context, "13:29")
    assert recording_server.placed_calls == []

    work(context, "13:30")
    [placed] = recording_server.placed_calls
    follow_up = follow_up_of(database, ticket_id)
    assert (placed.to, placed.from_, placed.method) == (RESIDENT, LINE_NUMBER, "POST")
    assert placed.url == f"{settings.public_url}/twilio/outbound/answer?follow_up={follow_up.id}&attempt=1"
    assert placed.status_callback == f"{settings.public_url}/twilio/outbound/status?follow_up={follow_up.id}&attempt=1"
    assert placed.status_callback_events == ("initiated", "ringing", "answered", "completed")
    assert placed.machine_detection == "Enable"
    assert (follow_up.state, follow_up.attempts, follow_up.call_sid) == (FollowUpState.CALLING, 1, placed.sid)
    assert follow_up.last_attempt_at == at("13:30")


def test_a_follow_up_delay_lets_the_resident_live_with_the_repair_first(context, database, recording_server):
    """IVR_FOLLOW_UP_DELAY_MINUTES=1440: resolved at 10:00, called the next day at 10:00 (a window), not at once;
    a retry is not delayed again."""
    day_later = JobContext(replace(context.settings, follow_up_delay_minutes=1440), context.database)
    ticket_id = resolved_ticket(database, "10:00")
    work(day_later, "10:00")
    assert recording_server.placed_calls == []
    assert follow_up_of(database, ticket_id).due_at == at("10:00", "2026-12-02")
    work(day_later, "09:59", "2026-12-02")
    assert recording_server.placed_calls == []
    work(day_later, "10:00", "2026-12-02")
    assert len(recording_server.placed_calls) == 1


@pytest.mark.parametrize(
    ("now", "moved_to"),
    [
        ("12:15", at("13:30")),  # lunch
        ("18:00", at("19:30")),  # dinner
        ("21:00", at("09:00", "2026-12-02")),  # night
    ],
)
def test_the_placement_job_calls_nobody_outside_a_window_even_when_due(
    context, database, recording_server, now, moved_to
):
    ticket_id = resolved_ticket(database, "10:00")
    follow_up = follow_up_of(database, ticket_id)
    with database.session() as session:
        session.get(FollowUp, follow_up.id).due_at = at("10:00")  # long due
    with frozen_clock(at(now)):
        place_follow_up_call.run(context, follow_up.id)
    assert recording_server.placed_calls == []
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.attempts, follow_up.due_at) == (FollowUpState.SCHEDULED, 0, moved_to)


def test_a_satisfied_resident_closes_the_ticket_with_their_satisfaction(context, database, recording_server, phone):
    ticket_id = resolved_ticket(database, "10:00")
    work(context, "10:00")
    [placed] = recording_server.placed_calls
    with frozen_clock(at("10:01")):
        result = phone.answer_outbound(placed, ["1", "4", Message(HELLO_WAV)]).raise_for_errors()

    ticket = ticket_of(database, ticket_id)
    day = ticket.call.started_at.astimezone(SHANGHAI)
    assert result.said[0] == f"您好,这里是幸福家园物业服务中心,我们回访您{day.month}月{day.day}日反映的报修问题。"
    assert result.said[1] == prompt("follow_up_ask_resolved")
    assert "不再接收回访请按9" in result.said[1]
    assert result.said[-1] == prompt("follow_up_goodbye")
    assert result.heard[-1].kind == "pause" and result.heard[-1].seconds >= 10  # the resident hangs up first (E6)
    assert (ticket.status, ticket.satisfaction) == (TicketStatus.CLOSED, "满意")
    assert ticket.follow_up_result == "回访电话:住户表示问题已解决,满意度4分(满意)。"
    assert ticket.followed_up_at == at("10:01") and ticket.closed_at == at("10:01")
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.resolved, follow_up.satisfaction) == (FollowUpState.DONE, True, 4)
    [comment_sid] = result.recordings
    with database.session(read_only=True) as session:
        comment = session.get(Recording, follow_up.comment_recording_id)
        assert comment.recording_sid == comment_sid and comment.ticket_id is None  # not the ticket's own text
        download = session.scalars(select(Job).where(Job.kind == "download_recording", Job.subject_id == comment.id))
        assert download.one_or_none() is not None  # fetched and transcribed like a message
    kinds = [event.kind for event in ticket.events]
    assert {"follow_up_scheduled", "follow_up_call", "follow_up_answered", "follow_up_comment"} <= set(kinds)


def test_a_complaint_is_followed_up_once_the_reply_is_recorded(context, database):
    ticket_id = create_ticket(database, category=Category.COMPLAINT, caller=RESIDENT)
    with frozen_clock(at("10:00")), database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        procedure.dispatch(session, ticket, "wang", "环境部", "赵")
        procedure.start_work(session, ticket, "zhao")
        procedure.write_analysis(session, ticket, "zhao", "清运不及时", "张经理")
        procedure.resolve(session, ticket, "zhao")
        assert session.scalars(select(FollowUp)).all() == []  # not yet: the caller has not been replied to
        procedure.reply_to_caller(session, ticket, "wang", "已安排每日清运")
        [follow_up] = session.scalars(select(FollowUp)).all()
        assert follow_up.state == FollowUpState.SCHEDULED


def test_not_resolved_reopens_the_ticket_and_tells_its_department_and_the_manager(
    context, database, recording_server, phone
):
    ticket_id = resolved_ticket(database, "10:00", category=Category.COMPLAINT)
    work(context, "10:00")
    [placed] = recording_server.placed_calls
    with frozen_clock(at("10:01")):
        result = phone.answer_outbound(placed, ["2", "2", SILENCE]).raise_for_errors()

    assert prompt("follow_up_reopened") in result.said
    ticket = ticket_of(database, ticket_id)
    assert ticket.status == TicketStatus.IN_PROGRESS and ticket.resolved_at is None
    assert ticket.follow_up_result == "回访电话:住户表示问题没有解决,满意度2分(不满意)。"
    with database.session(read_only=True) as session:
        notices = session.scalars(select(Notice).where(Notice.ticket_id == ticket_id)).all()
    assert sorted(notice.role for notice in notices) == [Role.DEPARTMENT, Role.MANAGER]
    assert all("没有解决" in notice.message for notice in notices)
    assert follow_up_of(database, ticket_id).state == FollowUpState.DONE


def test_an_opt_out_is_kept_and_honoured(context, database, recording_server, phone):
    ticket_id = resolved_ticket(database, "10:00")
    work(context, "10:00")
    [placed] = recording_server.placed_calls
    with frozen_clock(at("10:01")):
        result = phone.answer_outbound(placed, ["9"]).raise_for_errors()
    assert result.said[-2:] == [prompt("follow_up_opted_out"), prompt("follow_up_goodbye")]
    assert follow_up_of(database, ticket_id).state == FollowUpState.OPTED_OUT
    with database.session(read_only=True) as session:
        [kept] = session.scalars(select(FollowUpOptOut)).all()
        assert (kept.property_id, kept.phone, kept.ticket_id) == (1, RESIDENT, ticket_id)
        # No more calls, but the ticket still wants its follow-up: a person calls back (回访) by hand.
        assert [each.ticket_id for each in call_back_by_hand(session)] == [ticket_id]

    later = resolved_ticket(database, "14:00")
    assert follow_up_of(database, later).state == FollowUpState.OPTED_OUT
    work(context, "14:00")
    work(context, "09:30", "2026-12-02")
    assert len(recording_server.placed_calls) == 1  # nobody called that phone again
    assert ticket_of(database, ticket_id).status == TicketStatus.RESOLVED  # staff may still follow it up


def test_no_answer_three_times_puts_the_ticket_on_the_call_back_by_hand_list(
    context, database, recording_server, phone
):
    ticket_id = resolved_ticket(database, "09:00")
    outcomes = {"09:00": "no-answer", "13:30": "busy", "19:30": "no-answer"}
    for clock in ("09:00", "11:00", "13:30", "15:30", "19:30", "20:00"):
        work(context, clock)
        if clock in outcomes:
            placed = recording_server.placed_calls[-1]
            with frozen_clock(at(clock) + timedelta(seconds=30)):
                phone.answer_outbound(placed, outcome=outcomes[clock]).raise_for_errors()
    work(context, "09:00", "2026-12-02")

    assert len(recording_server.placed_calls) == 3
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.attempts, follow_up.last_outcome) == (FollowUpState.UNREACHABLE, 3, "no-answer")
    assert "3次" in follow_up.reason and "人工回访" in follow_up.reason
    with database.session(read_only=True) as session:
        placed_at = session.scalars(
            select(TicketEvent.at).where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "follow_up_call")
        ).all()
        assert placed_at == [at("09:00"), at("13:30"), at("19:30")]  # later windows, each at least 2 h apart
        assert all(later - earlier >= timedelta(hours=2) for earlier, later in pairwise(placed_at))
        assert [each.ticket_id for each in call_back_by_hand(session)] == [ticket_id]
        steps = [entry.what for entry in timeline(session, session.get(Ticket, ticket_id))]
    # The ticket page's timeline says each step in Chinese, never the event's kind
    assert steps.count("拨出回访电话") == 3 and steps.count("回访未接通,稍后再拨") == 2
    assert "安排回访电话" in steps and "回访未能完成,需人工回访" in steps
    assert not [step for step in steps if step.startswith("follow_up")], steps


def test_a_machine_is_counted_as_an_attempt_and_asked_nothing(context, database, recording_server, phone):
    ticket_id = resolved_ticket(database, "10:00")
    work(context, "10:00")
    [placed] = recording_server.placed_calls
    with frozen_clock(at("10:01")):
        result = phone.answer_outbound(placed, ["1", "5"], answered_by="machine_start").raise_for_errors()
    assert result.said == [prompt("follow_up_machine", property_name="幸福家园")]
    assert result.keys == [] and result.unused_steps == ["1", "5"]
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.attempts, follow_up.last_outcome) == (FollowUpState.SCHEDULED, 1, "machine")
    assert follow_up.due_at == at("13:30")
    assert ticket_of(database, ticket_id).status == TicketStatus.RESOLVED


def test_silence_and_wrong_keys_are_apologised_for_and_asked_again(context, database, recording_server, phone):
    ticket_id = resolved_ticket(database, "10:00")
    work(context, "10:00")
    [placed] = recording_server.placed_calls
    with frozen_clock(at("10:01")):
        result = phone.answer_outbound(placed, [SILENCE, "7", "1", "6", "3", SILENCE]).raise_for_errors()
    assert result.said.count(prompt("follow_up_ask_resolved")) == 3
    assert prompt("no_input") in result.said and prompt("invalid_key") in result.said
    assert result.said.count(prompt("follow_up_ask_satisfaction")) == 2
    assert follow_up_of(database, ticket_id).satisfaction == 3
    assert ticket_of(database, ticket_id).status == TicketStatus.CLOSED  # 3 (基本满意) is satisfied


def test_a_property_without_a_number_of_its_own_is_not_called_from_another(context, database, recording_server):
    with database.session() as session:
        east = save_property(session, "east", name="东区花园").id
    ticket_id = resolved_ticket(database, "10:00", property_id=east)
    follow_up = follow_up_of(database, ticket_id)
    with frozen_clock(at("10:00")), pytest.raises(FollowUpCallRefused, match="east"):
        place_follow_up_call.run(context, follow_up.id)
    assert recording_server.placed_calls == []
    follow_up = follow_up_of(database, ticket_id)
    assert follow_up.state == FollowUpState.UNREACHABLE and "东区花园" in follow_up.reason
    with database.session(read_only=True) as session:
        assert [each.id for each in call_back_by_hand(session)] == [follow_up.id]


@pytest.mark.parametrize(
    ("keys", "state", "status"),
    [
        (["2"], FollowUpState.DONE, TicketStatus.IN_PROGRESS),  # "not resolved" is acted on even without a score
        (["1"], FollowUpState.SCHEDULED, TicketStatus.RESOLVED),  # resolved but no score: asked again later
    ],
)
def test_a_resident_who_hangs_up_before_the_score(context, database, recording_server, phone, keys, state, status):
    ticket_id = resolved_ticket(database, "10:00")
    work(context, "10:00")
    [placed] = recording_server.placed_calls
    with frozen_clock(at("10:01")):
        result = phone.answer_outbound(placed, keys).raise_for_errors()
    assert result.ended_by == "caller"
    follow_up = follow_up_of(database, ticket_id)
    assert follow_up.state == state
    assert ticket_of(database, ticket_id).status == status
    if state == FollowUpState.SCHEDULED:
        assert (follow_up.attempts, follow_up.last_outcome, follow_up.due_at) == (1, "hung-up", at("13:30"))


def test_a_call_that_never_reports_back_counts_as_an_attempt(context, database, recording_server):
    ticket_id = resolved_ticket(database, "09:00")
    work(context, "09:00")
    assert follow_up_of(database, ticket_id).state == FollowUpState.CALLING
    work(context, "09:30")  # its status callback may still come
    assert follow_up_of(database, ticket_id).state == FollowUpState.CALLING
    work(context, "10:05")  # it never did: a lost attempt, tried again in a later window
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.last_outcome, follow_up.due_at) == (FollowUpState.SCHEDULED, "lost", at("13:30"))
    work(context, "13:30")
    assert len(recording_server.placed_calls) == 2


def test_a_call_request_twilio_took_but_did_not_answer_is_not_placed_twice(
    context, database, recording_server, monkeypatch
):
    """A read timeout: the call may be ringing. It is not placed again at once (the resident would be rung
    twice); its webhooks still find it by the signed URL, or the sweep counts it lost and calls in a later window."""
    import requests

    from ivr import twilio_rest

    real_client = twilio_rest.twilio_client

    def slow_twilio(settings):
        client = real_client(settings)
        real_create = client.calls.create

        def create(**params):
            real_create(**params)  # Twilio placed it…
            raise requests.ReadTimeout("read timed out")  # …and its answer never came back

        monkeypatch.setattr(client.calls, "create", create)
        return client

    monkeypatch.setattr(twilio_rest, "twilio_client", slow_twilio)
    ticket_id = resolved_ticket(database, "09:00")
    work(context, "09:00")  # no exception: the job is done, not retried
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.attempts, follow_up.call_sid) == (FollowUpState.CALLING, 1, None)
    work(context, "09:10")
    assert len(recording_server.placed_calls) == 1
    work(context, "10:05")
    assert follow_up_of(database, ticket_id).last_outcome == "lost"


def test_a_number_twilio_refuses_goes_to_the_by_hand_list_at_once(context, database, recording_server):
    ticket_id = resolved_ticket(database, "09:00")
    recording_server.fail_next("Calls", status=400)
    work(context, "09:00")
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.attempts, follow_up.last_outcome) == (FollowUpState.UNREACHABLE, 1, "refused")
    with database.session(read_only=True) as session:
        assert [each.id for each in call_back_by_hand(session)] == [follow_up.id]


def test_twilio_out_of_reach_is_retried_without_counting_an_attempt(context, database, recording_server):
    from ivr.followup.calls import TwilioNotReached

    ticket_id = resolved_ticket(database, "09:00")
    follow_up = follow_up_of(database, ticket_id)
    recording_server.fail_next("Calls", status=503)
    with frozen_clock(at("09:00")), pytest.raises(TwilioNotReached):
        place_follow_up_call.run(context, follow_up.id)  # the job queue retries it with its backoff
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.attempts) == (FollowUpState.SCHEDULED, 0)
    with frozen_clock(at("09:01")):
        place_follow_up_call.run(context, follow_up.id)
    assert len(recording_server.placed_calls) == 1 and follow_up_of(database, ticket_id).attempts == 1


def test_the_answer_may_come_before_the_job_noted_the_call(context, database, recording_server, phone):
    ticket_id = resolved_ticket(database, "10:00")
    work(context, "10:00")
    [placed] = recording_server.placed_calls
    with database.session() as session:
        session.get(FollowUp, follow_up_of(database, ticket_id).id).call_sid = None  # Twilio was quicker
    with frozen_clock(at("10:01")):
        phone.answer_outbound(placed, ["1", "5", SILENCE]).raise_for_errors()
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.call_sid, follow_up.satisfaction) == (FollowUpState.DONE, placed.sid, 5)


def test_a_late_callback_of_an_earlier_attempt_is_not_taken_for_the_next(context, database, recording_server, phone):
    from ivr.followup.calls import plan_attempt

    ticket_id = resolved_ticket(database, "09:00")
    work(context, "09:00")
    [first] = recording_server.placed_calls
    with frozen_clock(at("09:01")):
        phone.answer_outbound(first, outcome="no-answer").raise_for_errors()
    follow_up_id = follow_up_of(database, ticket_id).id
    with frozen_clock(at("13:30")), database.session() as session:
        assert plan_attempt(session, follow_up_id, context.settings, at("13:30")) is not None  # claimed, not dialled
    with frozen_clock(at("13:30")):
        phone.answer_outbound(first, outcome="no-answer").raise_for_errors()  # attempt 1's callback, again
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.attempts, follow_up.call_sid) == (FollowUpState.CALLING, 2, None)


def test_a_property_with_its_own_windows_and_days_off_is_called_only_within_them(context, database, recording_server):
    with database.session() as session:
        east = save_property(
            session,
            "east",
            name="东区花园",
            numbers=("+862160000001",),
            call_windows="14:00-15:00",
            call_days_off="tue",  # the test day
        ).id
    ticket_id = resolved_ticket(database, "10:00", property_id=east)
    work(context, "10:00")  # inside the settings' windows, but not the property's: nobody is called
    assert recording_server.placed_calls == []
    assert follow_up_of(database, ticket_id).due_at == at("14:00", "2026-12-02")  # Tuesday is its day off
    work(context, "14:30")
    assert recording_server.placed_calls == []

    work(context, "14:00", "2026-12-02")
    [placed] = recording_server.placed_calls
    assert (placed.to, placed.from_) == (RESIDENT, "+862160000001")
    follow_up = follow_up_of(database, ticket_id)
    assert (follow_up.state, follow_up.last_attempt_at) == (FollowUpState.CALLING, at("14:00", "2026-12-02"))


def test_a_step_of_the_follow_up_call_that_fails_apologises_to_the_resident_and_is_spooled(
    context, database, recording_server, phone, settings, monkeypatch
):
    ticket_id = resolved_ticket(database, "10:00")
    work(context, "10:00")
    [placed] = recording_server.placed_calls

    def database_gone(*args, **kwargs):
        raise OperationalError("UPDATE tickets …", {}, Exception("database is locked"))

    monkeypatch.setattr(outbound, "record_answers", database_gone)
    with frozen_clock(at("10:01")):
        result = phone.answer_outbound(placed, ["1", "4"]).raise_for_errors()

    assert result.said[-1] == prompt("follow_up_trouble") == "对不起,系统暂时繁忙,打扰您了,我们稍后再与您联系,再见。"
    assert prompt("system_trouble") not in result.said  # not "leave your room and problem" as to an inbound caller
    assert result.heard[-1].kind == "pause" and result.heard[-1].seconds >= 10  # the resident hangs up first (E6)
    assert [entry.endpoint for entry in Spool(settings.spool_dir).entries()] == ["outbound/satisfaction"]
    assert ticket_of(database, ticket_id).status == TicketStatus.RESOLVED  # nothing of the failed step was kept
    follow_up = follow_up_of(database, ticket_id)  # "we will call you again": the next window
    assert (follow_up.state, follow_up.attempts, follow_up.due_at) == (FollowUpState.SCHEDULED, 1, at("13:30"))
