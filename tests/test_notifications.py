"""Managers are told at once about urgent tickets and major complaints: console notice and SMS."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select, update

from ivr.config import load_settings
from ivr.devphone.callers import HANGUP
from ivr.jobs import JobContext
from ivr.models import Job, JobState, Notice, Ticket
from ivr.staff import create_user
from ivr.tickets.procedure import flag_for_manager
from tests.factories import TWILIO_API_FIXTURES, create_ticket, replay, ticket_for


@pytest.fixture
def settings(settings_environ):
    """SMS configured: IVR_SMS_FROM is the line's Twilio number."""
    return load_settings({**settings_environ, "IVR_SMS_FROM": "+8610800000000"})


def add_manager(database, phone: str = "+8613800009999") -> None:
    with database.session() as session:
        create_user(session, "boss", "manager-password", "manager", phone=phone)


def run_sms_jobs(app, database) -> list[Job]:
    """Run the queued SMS jobs in this thread, as a worker would."""
    queue = app.extensions["ivr.queue"]
    with database.session() as session:
        ids = list(session.scalars(select(Job.id).where(Job.kind == "notify_sms")))
    for job_id in ids:
        queue.run_job(job_id)
    with database.session() as session:
        return list(session.scalars(select(Job).where(Job.kind == "notify_sms")))


def test_an_emergency_call_notifies_managers_by_console_and_sms(app, phone, database, twilio_api):
    add_manager(database)
    replay(twilio_api, "create_message.json")
    result = phone.call(["9", HANGUP]).raise_for_errors()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.urgent
    [job] = run_sms_jobs(app, database)
    assert job.state == JobState.DONE, job.last_error
    sent = parse_qs(twilio_api.calls[0].request.body)
    assert sent["To"] == ["+8613800009999"] and sent["From"] == ["+8610800000000"]
    assert ticket.number in sent["Body"][0] and "紧急" in sent["Body"][0]
    with database.session() as session:
        notice = session.scalars(select(Notice)).one()
        assert notice.role == "manager" and notice.sms_sids == ["+8613800009999:SM3f1c2b9a8d7e4f6a5b4c3d2e1f0a9b8c"]


def test_without_sms_configured_the_console_notice_is_all(app, settings, database, twilio_api):
    app.extensions["ivr.queue"].context = JobContext(settings.replace(sms_from=None), database)
    add_manager(database)
    ticket_id = create_ticket(database)
    with database.session() as session:
        flag_for_manager(session, session.get(Ticket, ticket_id), "wang", "多户联名投诉")
    [job] = run_sms_jobs(app, database)
    assert job.state == JobState.DONE and not twilio_api.calls
    with database.session() as session:
        assert session.scalars(select(Notice.message)).one().endswith("多户联名投诉")


def test_twilio_refusing_the_number_fails_the_sms_once_with_the_reason(app, database, twilio_api):
    add_manager(database, phone="+86138000099XX")
    replay(twilio_api, "create_message_400_invalid_to.json")
    ticket_id = create_ticket(database)
    with database.session() as session:
        flag_for_manager(session, session.get(Ticket, ticket_id), "wang", "重大投诉")
    [job] = run_sms_jobs(app, database)
    assert (job.state, job.attempts) == (JobState.FAILED, 1)
    with database.session() as session:
        assert "21211" in (session.scalars(select(Notice.sms_error)).one() or "")


# --- one SMS per manager: every phone is tried, each outcome kept -------------------------------------------

BAD_PHONE = "+86138000099XX"  # Twilio refuses it: 400, error 21211 (tests/fixtures/twilio_api)
GOOD_PHONE = "+8613800009999"
SENT_SID = "SM3f1c2b9a8d7e4f6a5b4c3d2e1f0a9b8c"
TWILIO = "https://api.twilio.com"


def add_managers(database, *phones: str) -> None:
    with database.session() as session:
        for index, phone in enumerate(phones):
            create_user(session, f"manager{index}", "manager-password", "manager", phone=phone)


def sms_to(phone: str):
    """A `responses` matcher: the SMS is addressed to `phone`."""

    def match(request) -> tuple[bool, str]:
        to = parse_qs(request.body).get("To")
        return to == [phone], f"To is {to}, not {phone}"

    return match


def answer_sms(
    mock, phone: str, fixture: str = "create_message.json", *, status: int | None = None, base: str = TWILIO
) -> None:
    """Twilio's answer to the next SMS to `phone`: a recorded exchange, or another HTTP status."""
    exchange = json.loads((TWILIO_API_FIXTURES / fixture).read_text())
    response = exchange["response"]
    body = response["body"]
    if status is not None:
        body = {
            "code": 20500,
            "message": "Internal Server Error",
            "status": status,
            "more_info": "https://www.twilio.com/docs/errors/20500",
        }
    headers = dict(response["headers"])
    mock.add(
        "POST",
        exchange["request"]["url"].replace(TWILIO, base),
        json=body,
        status=status or response["status"],
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
        match=[sms_to(phone)],
    )


def flag_a_ticket(database) -> None:
    ticket_id = create_ticket(database)
    with database.session() as session:
        flag_for_manager(session, session.get(Ticket, ticket_id), "wang", "重大投诉")


def the_notice(database) -> Notice:
    with database.session() as session:
        return session.scalars(select(Notice)).one()


def texted(mock) -> list[str]:
    return [parse_qs(call.request.body)["To"][0] for call in mock.calls]


def test_a_refused_number_does_not_stop_the_other_managers_sms(app, database, twilio_api):
    add_managers(database, BAD_PHONE, GOOD_PHONE)
    answer_sms(twilio_api, BAD_PHONE, "create_message_400_invalid_to.json")
    answer_sms(twilio_api, GOOD_PHONE)
    flag_a_ticket(database)

    [job] = run_sms_jobs(app, database)

    assert (job.state, job.attempts) == (JobState.DONE, 1), job.last_error
    assert texted(twilio_api) == [BAD_PHONE, GOOD_PHONE]
    notice = the_notice(database)
    assert notice.sms_sids == [f"{GOOD_PHONE}:{SENT_SID}"]
    assert notice.sms_error == (
        f"{BAD_PHONE}: Twilio refused the SMS (400 21211): "
        f"Unable to create record: Invalid 'To' Phone Number: {BAD_PHONE}"
    )


def test_a_transient_failure_retries_only_the_numbers_it_hit(app, database, twilio_api):
    add_managers(database, "+8613800001111", GOOD_PHONE, BAD_PHONE)
    answer_sms(twilio_api, "+8613800001111", status=503)
    answer_sms(twilio_api, GOOD_PHONE)
    answer_sms(twilio_api, BAD_PHONE, "create_message_400_invalid_to.json")
    flag_a_ticket(database)

    [job] = run_sms_jobs(app, database)

    assert job.state == JobState.QUEUED and "+8613800001111: Twilio refused the SMS (503 20500)" in job.last_error
    assert the_notice(database).sms_sids == [f"{GOOD_PHONE}:{SENT_SID}"]
    answer_sms(twilio_api, "+8613800001111")

    [job] = run_sms_jobs(app, database)

    assert (job.state, job.attempts) == (JobState.DONE, 2), job.last_error
    # The retry texted only the number that failed for a passing reason; the refused one is not tried again.
    assert texted(twilio_api) == ["+8613800001111", GOOD_PHONE, BAD_PHONE, "+8613800001111"]
    notice = the_notice(database)
    assert notice.sms_sids == [f"{GOOD_PHONE}:{SENT_SID}", f"+8613800001111:{SENT_SID}"]
    assert notice.sms_error is not None and notice.sms_error.startswith(f"{BAD_PHONE}: ")
    assert len(notice.sms_error.splitlines()) == 1


def test_a_number_that_keeps_failing_is_given_up_with_its_reason(app, database, twilio_api):
    import requests

    add_managers(database, "+8613800001111", GOOD_PHONE)
    twilio_api.add(
        "POST",
        f"{TWILIO}/2010-04-01/Accounts/AC{'0' * 32}/Messages.json",
        body=requests.ConnectionError("Failed to resolve 'api.twilio.com'"),
        match=[sms_to("+8613800001111")],
    )
    answer_sms(twilio_api, "+8613800001111", status=500)
    answer_sms(twilio_api, GOOD_PHONE)
    flag_a_ticket(database)
    with database.session() as session:
        session.execute(update(Job).values(max_attempts=2))

    run_sms_jobs(app, database)
    [job] = run_sms_jobs(app, database)

    assert (job.state, job.attempts) == (JobState.FAILED, 2)
    assert texted(twilio_api) == ["+8613800001111", GOOD_PHONE, "+8613800001111"]
    notice = the_notice(database)
    assert notice.sms_sids == [f"{GOOD_PHONE}:{SENT_SID}"]
    assert notice.sms_error is not None and notice.sms_error.startswith("+8613800001111: not sent, gave up: ")
    assert "(500 20500)" in notice.sms_error


def test_the_sms_goes_to_the_configured_twilio_api_url(app, settings, database, twilio_api):
    gateway = "https://twilio-gateway.example.test"
    app.extensions["ivr.queue"].context = JobContext(settings.replace(twilio_api_url=gateway), database)
    add_managers(database, GOOD_PHONE)
    answer_sms(twilio_api, GOOD_PHONE, base=gateway)
    flag_a_ticket(database)

    [job] = run_sms_jobs(app, database)

    assert job.state == JobState.DONE, job.last_error
    [call] = twilio_api.calls
    assert call.request.url == f"{gateway}/2010-04-01/Accounts/AC{'0' * 32}/Messages.json"
    assert the_notice(database).sms_sids == [f"{GOOD_PHONE}:{SENT_SID}"]
