"""Whole calls through the webhooks, driven by the dev phone with real signatures."""

from __future__ import annotations

import re

import pytest

from ivr.devphone.callers import HANGUP, SILENCE, DialOutcome, Message
from ivr.models import Category, RecordingState
from tests.factories import DUAL_WAV, HELLO_WAV, recordings_of, sha256_of, ticket_for

GREETING = re.compile(r"^您好,幸福家园物业服务中心,.*很高兴为您服务")
MENU_SAYS = "报修请按1"


def test_repair_call_creates_a_confirmed_ticket_with_the_audio_stored_byte_exact(phone, database, worker, settings):
    result = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "1"], from_="+8613912345678").raise_for_errors()

    assert GREETING.match(result.said[0]), result.said[0]  # E2: the first words
    assert MENU_SAYS in result.said[1]
    assert "您的房号是三栋二单元五零一室" in result.transcript()
    assert "来电号码尾号五六七八" in result.transcript()  # E4 read-back before the goodbye
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None
    assert (ticket.category, ticket.room, ticket.caller_number) == (Category.REPAIR, "3-2-501", "+8613912345678")
    assert ticket.confirmed
    spoken_number = "".join("零一二三四五六七八九"[int(d)] for d in ticket.number)
    assert spoken_number[:6] + "," + spoken_number[6:] in result.transcript()
    goodbye_at = next(i for i, text in enumerate(result.said) if "再见" in text)
    read_back_at = next(i for i, text in enumerate(result.said) if "尾号" in text)
    assert read_back_at < goodbye_at
    # E6: after the goodbye the line pauses so the caller can hang up first.
    assert [h.kind for h in result.heard][-1] == "pause"

    assert worker.wait_idle(timeout=20)
    [recording] = recordings_of(database, result.call_sid)
    assert recording.state == RecordingState.STORED, recording.error
    stored = settings.recordings_dir / recording.path
    assert stored.read_bytes() == HELLO_WAV.read_bytes()
    assert recording.sha256 == sha256_of(HELLO_WAV)
    assert recording.duration == pytest.approx(2.0, abs=0.05)
    assert result.call_sid in recording.path and recording.path.count("/") == 4  # YYYY/MM/DD/CallSid/RE….wav


def test_complaint_ticket_records_the_category_and_says_the_one_hour_promise(phone, database):
    result = phone.call(["2", "12*1*1203#", "1", Message(HELLO_WAV), "1"]).raise_for_errors()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.category == Category.COMPLAINT and ticket.room == "12-1-1203"
    assert "十二栋一单元一二零三室" in result.transcript()
    assert "一小时内" in result.transcript()


def test_wrong_key_apologises_and_repeats_the_menu(phone):
    result = phone.call(["7", "1", HANGUP]).raise_for_errors()
    assert any(text.startswith("对不起") for text in result.said[2:4])
    assert sum(MENU_SAYS in text for text in result.said) == 2


def test_silence_in_the_menu_asks_again_then_offers_a_person(phone):
    result = phone.call([SILENCE, SILENCE, SILENCE, DialOutcome("completed")]).raise_for_errors()
    transcript = result.transcript()
    assert transcript.count("对不起,我没有听到您的按键") == 2
    assert "转接人工服务" in transcript
    dial = result.last("dial")
    assert dial.params["DialCallStatus"] == "completed"


def test_room_is_re_entered_after_a_bad_format_and_after_pressing_2(phone, database):
    result = phone.call(["1", "3*2#", "3*2*502#", "2", "3*2*501#", "1", Message(HELLO_WAV), "1"]).raise_for_errors()
    assert "房号格式不正确" in result.transcript()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.room == "3-2-501"


def test_room_given_up_after_three_bad_tries_still_takes_the_message(phone, database):
    result = phone.call(["1", "1", "22", "***#", Message(HELLO_WAV), "1"]).raise_for_errors()
    assert "请在留言中说明您的房号" in result.transcript()
    assert "您没有输入房号" in result.transcript()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.room is None and ticket.confirmed


def test_hanging_up_during_the_message_keeps_an_unconfirmed_ticket_with_the_audio(phone, database, worker):
    result = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV, finish="hangup")]).raise_for_errors()
    assert result.ended_by == "caller"
    assert worker.wait_idle(timeout=20)
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and not ticket.confirmed and ticket.note is None
    assert [r.state for r in ticket.recordings] == [RecordingState.STORED]


def test_hanging_up_at_the_read_back_keeps_an_unconfirmed_ticket(phone, database):
    result = phone.call(["2", "3*2*501#", "1", Message(HELLO_WAV), HANGUP]).raise_for_errors()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and not ticket.confirmed and len(ticket.recordings) == 1


def test_recording_again_keeps_every_take(phone, database, worker):
    result = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "2", Message(DUAL_WAV), "1"]).raise_for_errors()
    assert worker.wait_idle(timeout=20)
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.confirmed
    assert [r.sha256 for r in ticket.recordings] == [sha256_of(HELLO_WAV), sha256_of(DUAL_WAV)]


def test_an_empty_recording_is_met_with_an_apology_and_a_second_chance(phone, database):
    result = phone.call(["1", "3*2*501#", "1", SILENCE, Message(HELLO_WAV), "1"]).raise_for_errors()
    assert "没有录到您的声音" in result.transcript()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.confirmed and len(ticket.recordings) == 1


def test_hanging_up_after_choosing_repair_leaves_a_call_back_ticket(phone, database):
    result = phone.call(["1", HANGUP]).raise_for_errors()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.note == "来电在留言前挂断,请回电联系" and not ticket.confirmed


def test_hanging_up_at_the_greeting_leaves_no_ticket(phone, database):
    result = phone.call([HANGUP]).raise_for_errors()
    assert ticket_for(database, result.call_sid) is None


def test_person_transfer_rings_about_three_rings_and_records_both_sides(phone, database, worker):
    result = phone.call(["0", DialOutcome("completed", recording_wav=DUAL_WAV)]).raise_for_errors()
    dial_twiml = result.last("menu").body if result.requests_of("menu") else result.requests[1].body
    assert 'timeout="15"' in dial_twiml and 'record="record-from-answer-dual"' in dial_twiml
    assert "+8613800000001" in dial_twiml and "+8613800000002" in dial_twiml
    assert "再见" in result.said[-1]
    assert worker.wait_idle(timeout=20)
    [recording] = recordings_of(database, result.call_sid)
    assert recording.source == "dial" and recording.channels == 2 and recording.sha256 == sha256_of(DUAL_WAV)
    assert ticket_for(database, result.call_sid) is None  # a person took it; staff open tickets as needed


def test_nobody_answering_the_transfer_takes_a_message_as_a_ticket(phone, database):
    result = phone.call(["0", DialOutcome("no-answer"), Message(HELLO_WAV), "1"]).raise_for_errors()
    assert "值班人员暂时无法接听" in result.transcript()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.category == Category.OTHER and ticket.confirmed


def test_emergency_says_the_emergency_numbers_first_and_opens_an_urgent_ticket(phone, database):
    result = phone.call(["9", DialOutcome("busy"), Message(HELLO_WAV), "1"]).raise_for_errors()
    after_menu = " ".join(result.said[2:])
    assert after_menu.index("119") < after_menu.index("接通值班人员")
    assert "110" in after_menu and "120" in after_menu
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.urgent and ticket.category == Category.EMERGENCY
    assert len(ticket.recordings) == 1


def test_emergency_caller_hanging_up_while_ringing_is_still_on_record(phone, database):
    result = phone.call(["9", HANGUP]).raise_for_errors()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.urgent


def test_without_duty_numbers_a_person_request_becomes_a_message(app, phone, database, settings):
    app.config["IVR"] = settings.replace(duty_numbers=())
    result = phone.call(["0", Message(HELLO_WAV), "1"]).raise_for_errors()
    assert "值班人员暂时无法接听" in result.transcript()
    assert not result.requests_of("dial")
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.confirmed
