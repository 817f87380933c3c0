"""The dev phone's side of outbound calls: `POST Calls.json` as Twilio takes it, and `answer_outbound` playing
the callee (answered, or not) against the line's own webhooks."""

from __future__ import annotations

import requests

from ivr.twilio_rest import twilio_client


def place(settings, recording_server, **extra):
    """A call placed the way the line places it: twilio-python at IVR_TWILIO_API_URL."""
    from dataclasses import replace

    client = twilio_client(replace(settings, twilio_api_url=recording_server.base_url))
    return client.calls.create(
        to="+8613900001111",
        from_="+861062345678",
        url=f"{settings.public_url}/twilio/outbound/answer?follow_up=1",
        status_callback=f"{settings.public_url}/twilio/outbound/status?follow_up=1",
        status_callback_event=["initiated", "answered", "completed"],
        **extra,
    )


def test_calls_json_takes_a_call_as_twilio_does(settings, recording_server):
    call = place(settings, recording_server, machine_detection="Enable")
    [placed] = recording_server.placed_calls
    assert call.sid == placed.sid and call.status == "queued" and call.direction == "outbound-api"
    assert (placed.to, placed.from_, placed.machine_detection) == ("+8613900001111", "+861062345678", "Enable")
    assert placed.status_callback_events == ("initiated", "answered", "completed")
    assert recording_server.get_call(placed.sid).direction == "outbound-api"


def test_calls_json_needs_the_account_and_the_numbers(settings, recording_server):
    url = f"{recording_server.base_url}/2010-04-01/Accounts/{settings.twilio_account_sid}/Calls.json"
    form = {"To": "+8613900001111", "From": "+861062345678", "Url": "https://ivr.example.test/x"}
    assert requests.post(url, data=form, timeout=5).status_code == 401
    auth = (settings.twilio_account_sid, settings.twilio_auth_token)
    missing = requests.post(url, data={**form, "To": ""}, auth=auth, timeout=5)
    assert missing.status_code == 400 and missing.json()["code"] == 21201
    assert recording_server.placed_calls == []


def test_a_call_nobody_answers_only_reports_its_status(settings, recording_server, phone):
    place(settings, recording_server)
    [placed] = recording_server.placed_calls
    result = phone.answer_outbound(placed, outcome="no-answer")
    statuses = [(exchange.url, exchange.params["CallStatus"]) for exchange in result.requests]
    assert statuses == [(placed.status_callback, "initiated"), (placed.status_callback, "no-answer")]
    assert all(exchange.params["Direction"] == "outbound-api" for exchange in result.requests)
    assert all(exchange.status == 200 for exchange in result.requests)  # signed as Twilio signs


def test_an_answered_call_requests_its_url_with_answered_by(settings, recording_server, phone):
    place(settings, recording_server, machine_detection="Enable")
    [placed] = recording_server.placed_calls
    result = phone.answer_outbound(placed, answered_by="machine_start")
    answer = result.last("answer")
    assert answer.url == placed.url and answer.params["AnsweredBy"] == "machine_start"
    assert answer.params["From"] == "+861062345678" and answer.params["To"] == "+8613900001111"
    assert [exchange.params["CallStatus"] for exchange in result.requests_of("call-status")] == [
        "initiated",
        "in-progress",
        "completed",
    ]
