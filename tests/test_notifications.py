"""Managers are told at once about urgent tickets and major complaints: console notice and SMS."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from sqlalchemy import select

from ivr.config import load_settings
from ivr.devphone.emulator import HANGUP
from ivr.jobs import JobContext
from ivr.models import Job, JobState, Notice, Ticket
from ivr.staff import create_user
from ivr.tickets.procedure import flag_for_manager
from tests.factories import create_ticket, replay, ticket_for


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
