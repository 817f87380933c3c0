"""Forged, odd, retried and out-of-order webhooks: a polite answer or a 4xx, never a 5xx, nothing lost."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from ivr.devphone.callers import Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.transport import FlaskClientTransport
from ivr.models import Call, CallEvent, RecordingState, Ticket
from tests.factories import HELLO_WAV, call_params, count, sha256_of, signed_post, ticket_for


@pytest.mark.parametrize("path", ["/twilio/voice", "/twilio/menu", "/twilio/status", "/twilio/recording-status"])
def test_unsigned_requests_are_refused_without_touching_state(client, database, path):
    response = client.post(path, data=call_params(Digits="1"))
    assert response.status_code == 403
    assert count(database, Call) == 0 and count(database, CallEvent) == 0


def test_a_signature_for_other_parameters_or_another_url_is_refused(client, settings, database):
    params = call_params(Digits="1")
    validator = RequestValidator(settings.twilio_auth_token)
    tampered = validator.compute_signature(settings.public_url + "/twilio/menu", {**params, "Digits": "9"})
    other_url = validator.compute_signature("https://evil.example/twilio/menu", params)
    wrong_key = RequestValidator("not-the-token").compute_signature(settings.public_url + "/twilio/menu", params)
    for signature in (tampered, other_url, wrong_key):
        response = client.post("/twilio/menu", data=params, headers={"X-Twilio-Signature": signature})
        assert response.status_code == 403
    assert count(database, Call) == 0


def test_signature_covers_the_query_string(client, settings):
    params = call_params()
    signature = RequestValidator(settings.twilio_auth_token).compute_signature(
        settings.public_url + "/twilio/voice", params
    )
    response = client.post("/twilio/voice?x=1", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


def test_get_is_not_allowed(client):
    assert client.get("/twilio/voice").status_code == 405


@pytest.mark.parametrize("call_sid", ["", "CA123", "not-a-sid", "CA" + "g" * 32])
def test_missing_or_malformed_call_sid_is_a_400(client, settings, call_sid):
    params = call_params(call_sid)
    if not call_sid:
        del params["CallSid"]
    response = signed_post(client, settings, "/twilio/voice", params)
    assert response.status_code == 400
    assert b"CallSid" in response.data


@pytest.mark.parametrize("digits", ["1" * 5000, "", "一", "１", "<Say>hi</Say>", "1\x00", "*#*#", "💥"])
def test_odd_digits_get_a_polite_chinese_answer(client, settings, digits):
    signed_post(client, settings, "/twilio/voice", call_params())
    response = signed_post(client, settings, "/twilio/menu", call_params(Digits=digits))
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "对不起" in body and "报修请按1" in body
    assert "<Say>hi</Say>" not in body


def test_long_and_non_ascii_parameters_are_kept_bounded(client, settings, database):
    params = call_params(From="+86" + "9" * 3000, Extra="业主" * 5000)
    response = signed_post(client, settings, "/twilio/voice", params)
    assert response.status_code == 200
    with database.session() as session:
        event = session.query(CallEvent).one()
        assert len(event.params["Extra"]) <= 512


def test_a_step_for_an_unknown_call_still_answers_politely(client, settings):
    response = signed_post(client, settings, "/twilio/confirm", call_params("CA" + "2" * 32, Digits="1"))
    assert response.status_code == 200
    assert "请在提示音后" in response.get_data(as_text=True)


def test_retried_webhooks_are_harmless(app, settings, recording_server, database, worker):
    phone = TwilioEmulator(
        FlaskClientTransport(app, settings.public_url),
        settings.public_url,
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        recording_server,
        retry_webhooks=True,
    )
    result = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "1"]).raise_for_errors()
    assert all(exchange.replies_identical for exchange in result.requests if exchange.kind != "call-status")
    assert count(database, Ticket) == 1
    assert worker.wait_idle(timeout=20)
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.confirmed and len(ticket.recordings) == 1
    assert recording_server.fetch_count(ticket.recordings[0].recording_sid) == 1


def test_the_same_idempotency_token_replays_the_first_answer(client, settings, database):
    signed_post(client, settings, "/twilio/voice", call_params())
    headers = {"I-Twilio-Idempotency-Token": "tok-1"}
    first = signed_post(client, settings, "/twilio/menu", call_params(Digits="7"), headers)
    second = signed_post(client, settings, "/twilio/menu", call_params(Digits="7"), headers)
    assert first.data == second.data
    with database.session() as session:
        call = session.query(Call).one()
        assert call.counters == {"menu_invalid": 1}


def test_a_token_seen_on_another_call_or_endpoint_replays_nothing(client, settings, database):
    headers = {"I-Twilio-Idempotency-Token": "tok-shared"}
    other = "CA" + "2" * 32
    signed_post(client, settings, "/twilio/voice", call_params(), headers)
    first = signed_post(client, settings, "/twilio/menu", call_params(Digits="1"), {"I-Twilio-Idempotency-Token": "t2"})
    # Call 2 presents call 1's tokens: it gets its own answers and its own state.
    greeting = signed_post(client, settings, "/twilio/voice", call_params(other), headers)
    menu = signed_post(
        client, settings, "/twilio/menu", call_params(other, Digits="7"), {"I-Twilio-Idempotency-Token": "t2"}
    )
    assert greeting.status_code == 200 and "很高兴为您服务" in greeting.get_data(as_text=True)
    assert menu.data != first.data and "对不起" in menu.get_data(as_text=True)
    # The same token on another endpoint of the same call is another request too.
    room = signed_post(client, settings, "/twilio/room", call_params(Digits="3*2*501#"), headers)
    assert "三栋二单元五零一室" in room.get_data(as_text=True)
    with database.session(read_only=True) as session:
        calls = {call.call_sid: call for call in session.scalars(select(Call))}
        assert calls[other].counters == {"menu_invalid": 1}
        assert calls["CA" + "1" * 32].room == "3-2-501"


@pytest.mark.parametrize("timing", ["before-action", "end-of-call"])
def test_out_of_order_recording_callbacks_lose_nothing(app, settings, recording_server, database, worker, timing):
    phone = TwilioEmulator(
        FlaskClientTransport(app, settings.public_url),
        settings.public_url,
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        recording_server,
        recording_callback_timing=timing,
    )
    result = phone.call(["2", "3*2*501#", "1", Message(HELLO_WAV), "1"]).raise_for_errors()
    assert worker.wait_idle(timeout=20)
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.confirmed and ticket.room == "3-2-501"
    assert [(r.state, r.sha256) for r in ticket.recordings] == [(RecordingState.STORED, sha256_of(HELLO_WAV))]


def test_a_recording_callback_for_a_call_we_never_saw_creates_call_and_ticket(client, settings, database):
    params = call_params(
        "CA" + "3" * 32,
        RecordingSid="RE" + "3" * 32,
        RecordingStatus="completed",
        RecordingUrl="https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE" + "3" * 32,
        RecordingDuration="4",
        RecordingChannels="1",
        RecordingSource="RecordVerb",
    )
    assert signed_post(client, settings, "/twilio/recording-status", params).status_code == 200
    assert signed_post(client, settings, "/twilio/recording-status", params).status_code == 200
    ticket = ticket_for(database, "CA" + "3" * 32)
    assert ticket is not None and len(ticket.recordings) == 1


def test_the_fallback_url_takes_a_message(client, settings, database):
    first = signed_post(client, settings, "/twilio/fallback", call_params())
    assert "系统暂时繁忙" in first.get_data(as_text=True) and "<Record" in first.get_data(as_text=True)
    params = call_params(
        RecordingSid="RE" + "4" * 32,
        RecordingDuration="3",
        Digits="#",
        RecordingUrl="https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE" + "4" * 32,
    )
    second = signed_post(client, settings, "/twilio/fallback", params)
    assert "再见" in second.get_data(as_text=True)
    ticket = ticket_for(database, params["CallSid"])
    assert ticket is not None and len(ticket.recordings) == 1


def test_a_failing_step_apologises_and_records_instead_of_a_500(app, client, settings, monkeypatch):
    from ivr.telephony import menu

    def explode(turn):
        raise RuntimeError("database fell over")

    monkeypatch.setattr(menu, "ask_room", explode)
    signed_post(client, settings, "/twilio/voice", call_params())
    response = signed_post(client, settings, "/twilio/menu", call_params(Digits="1"))
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "对不起,系统暂时繁忙" in body and "<Record" in body


def test_a_step_that_loses_a_race_once_is_run_again_and_answers_as_usual(client, settings, database, monkeypatch):
    """A concurrent request for the same call inserted first (an IntegrityError at flush): the frame rolls
    back and runs the step again, which then succeeds — the caller hears the greeting, nothing is spooled."""
    from sqlalchemy.exc import IntegrityError

    from ivr.telephony import webhook
    from ivr.telephony.spool import Spool

    real, attempts = webhook.get_or_create_call, []

    def loses_the_first_race(session, call_sid, **fields):
        attempts.append(call_sid)
        call = real(session, call_sid, **fields)  # written in this attempt's transaction…
        if len(attempts) == 1:  # …which then hits the other request's row
            raise IntegrityError("INSERT INTO calls", None, Exception("UNIQUE constraint failed: calls.call_sid"))
        return call

    monkeypatch.setattr(webhook, "get_or_create_call", loses_the_first_race)
    response = signed_post(client, settings, "/twilio/voice", call_params())
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "您好,幸福家园物业服务中心" in body and "系统暂时繁忙" not in body
    assert attempts == ["CA" + "1" * 32] * 2
    assert count(database, Call) == 1 and count(database, CallEvent) == 1  # the first attempt left nothing
    assert Spool(settings.spool_dir).status().empty


def test_a_failing_step_after_a_message_only_says_goodbye(client, settings, database, monkeypatch):
    """The message is already recorded (the form has its RecordingSid): the apology does not ask for it again."""
    from ivr.telephony import message

    def explode(turn, **options):
        raise RuntimeError("database fell over")

    monkeypatch.setattr(message, "keep_posted_take", explode)
    params = call_params(
        RecordingSid="RE" + "5" * 32,
        RecordingDuration="3",
        Digits="#",
        RecordingUrl="https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE" + "5" * 32,
    )
    body = signed_post(client, settings, "/twilio/recorded", params).get_data(as_text=True)
    assert "再见" in body and "<Record" not in body and "系统暂时繁忙" not in body
