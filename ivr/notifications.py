"""Telling managers at once (重大投诉必须马上报告经理): a console notice, and an SMS through Twilio when
IVR_SMS_FROM is configured. The SMS is a job, so a Twilio hiccup is retried and never blocks a call."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.jobs import JobContext, PermanentJobError, schedule_job
from ivr.models import Notice, Ticket, User
from ivr.tickets.procedure import record_event

SMS_JOB = "notify_sms"
MANAGER_ROLE = "manager"
SMS_MAX_CHARS = 300


def notify_managers(session: Session, ticket: Ticket, actor: str | None, reason: str) -> Notice:
    """A notice for every manager's console, and the SMS job."""
    notice = Notice(ticket=ticket, role=MANAGER_ROLE, message=f"工单 {ticket.number}:{reason}")
    session.add(notice)
    record_event(session, ticket, "flagged", actor, reason=reason)
    session.flush()
    schedule_job(session, SMS_JOB, notice.id)
    return notice


def send_notice_sms(context: JobContext, notice_id: int) -> None:
    """Job handler: text the notice to every active manager with a phone, once each (retries skip
    the phones already done)."""
    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    settings = context.settings
    if not settings.sms_from:
        return  # SMS not configured: the console notice is the notification
    with context.database.session() as session:
        notice = session.get(Notice, notice_id)
        if notice is None:
            return
        phones = [phone for phone in session.scalars(
            select(User.phone).where(User.role == notice.role, User.active.is_(True), User.phone.is_not(None)))
            if phone]
        done = {entry.split(":", 1)[0] for entry in notice.sms_sids}
        body = f"【{settings.property_name}物业】{notice.message}"[:SMS_MAX_CHARS]
    client = Client(settings.twilio_account_sid, settings.twilio_auth_token)
    sent: list[str] = []
    try:
        for phone in phones:
            if phone not in done:
                message = client.messages.create(to=phone, from_=settings.sms_from, body=body)
                sent.append(f"{phone}:{message.sid}")
    except TwilioRestException as exc:
        error = f"Twilio refused the SMS ({exc.status} {exc.code}): {exc.msg}"
        if exc.status and 400 <= exc.status < 500 and exc.status != 429:
            raise PermanentJobError(error) from exc
        raise RuntimeError(error) from exc
    finally:
        if sent:
            with context.database.session() as session:
                notice = session.get(Notice, notice_id)
                if notice is not None:
                    notice.sms_sids = [*notice.sms_sids, *sent]


def sms_failed(context: JobContext, notice_id: int, error: str) -> None:
    with context.database.session() as session:
        notice = session.get(Notice, notice_id)
        if notice is not None:
            notice.sms_error = error
