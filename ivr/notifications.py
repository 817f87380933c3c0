"""Telling managers at once (重大投诉必须马上报告经理): a console notice, and an SMS through Twilio when
IVR_SMS_FROM is configured. The SMS is a job, so a Twilio hiccup is retried and never blocks a call."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ivr.jobs import JobContext, PermanentJobError, job
from ivr.models import Notice, Property, Ticket, User
from ivr.properties import property_directory
from ivr.tickets.events import record_event

MANAGER_ROLE = "manager"
SMS_MAX_CHARS = 300


def notify_managers(session: Session, ticket: Ticket, actor: str | None, reason: str) -> Notice:
    """A notice for every manager's console, and the SMS job."""
    notice = Notice(ticket=ticket, role=MANAGER_ROLE, message=f"工单 {ticket.number}:{reason}")
    session.add(notice)
    record_event(session, ticket, "flagged", actor, reason=reason)
    session.flush()
    send_notice_sms.schedule(session, notice.id)
    return notice


def _manager_phones(session: Session, role: str, property_id: int | None) -> list[str]:
    """The phones of the active staff with `role` who work for the property (or the whole company), each once,
    in account order."""
    query = select(User.phone).where(User.role == role, User.active.is_(True), User.phone.is_not(None))
    if property_id is not None:
        query = query.where(or_(~User.properties.any(), User.properties.any(Property.id == property_id)))
    phones = session.scalars(query.order_by(User.id))
    return list(dict.fromkeys(phone for phone in phones if phone))


def _phones_done(notice: Notice) -> set[str]:
    """Phones with a final outcome: texted (`phone:SID` in sms_sids) or refused (`phone: reason` lines)."""
    sent = {entry.split(":", 1)[0] for entry in notice.sms_sids}
    refused = {line.split(":", 1)[0] for line in (notice.sms_error or "").splitlines() if ":" in line}
    return sent | refused


def _phones_left(session: Session, notice: Notice) -> list[str]:
    """The phones of the notice's role still without a final outcome (to text, or to give up on)."""
    done = _phones_done(notice)
    property_id = notice.ticket.property_id if notice.ticket is not None else None
    return [phone for phone in _manager_phones(session, notice.role, property_id) if phone not in done]


def _add_failures(notice: Notice, lines: list[str]) -> None:
    notice.sms_error = "\n".join([*(notice.sms_error or "").splitlines(), *lines]) or None


def _refusal_is_permanent(status: int | None) -> bool:
    """A 4xx (a bad number, an unverified destination…) will be refused again; 429 and 5xx may pass later."""
    return status is not None and 400 <= status < 500 and status != 429


class SmsNotSentYet(Exception):
    """Some managers' SMS failed for a reason that may pass (Twilio busy or unreachable): retry those."""


def sms_failed(context: JobContext, notice_id: int, error: str) -> None:
    """Give-up hook: every manager's phone still without an outcome gets the last error as its reason."""
    with context.database.session() as session:
        notice = session.get(Notice, notice_id)
        if notice is None:
            return
        _add_failures(notice, [f"{phone}: not sent, gave up: {error}" for phone in _phones_left(session, notice)])
        if not notice.sms_error:
            notice.sms_error = error


@job("notify_sms", give_up=sms_failed)
def send_notice_sms(context: JobContext, notice_id: int) -> None:
    """Job handler: text the notice to every active manager with a phone, one SMS each.

    Every phone is tried; each outcome is kept on the notice (`phone:SID` in sms_sids, `phone: reason` in
    sms_error), so a bad number never stops the others and a retry texts only the phones whose failure may
    pass (HTTP 429, 5xx, network). The job fails outright only when no manager could be texted at all.
    """
    import requests
    from twilio.base.exceptions import TwilioRestException

    from ivr.twilio_rest import twilio_client

    settings = context.settings
    if not settings.sms_from:
        return  # SMS not configured: the console notice is the notification
    with context.database.session() as session:
        notice = session.get(Notice, notice_id)
        if notice is None:
            return
        phones = _phones_left(session, notice)
        anyone_texted = bool(notice.sms_sids)
        name = settings.property_name
        if notice.ticket is not None:
            name = property_directory(session).stored(notice.ticket.property_id).name or name
        body = f"【{name}物业】{notice.message}"[:SMS_MAX_CHARS]
    if not phones:
        return
    client = twilio_client(settings)
    sent: list[str] = []
    refused: list[str] = []
    retry: list[str] = []
    try:
        for phone in phones:
            try:
                message = client.messages.create(to=phone, from_=settings.sms_from, body=body)
            except TwilioRestException as exc:
                reason = f"{phone}: Twilio refused the SMS ({exc.status} {exc.code}): {exc.msg}"
                (refused if _refusal_is_permanent(exc.status) else retry).append(reason)
            except requests.RequestException as exc:
                retry.append(f"{phone}: could not reach Twilio ({type(exc).__name__}): {exc}")
            else:
                sent.append(f"{phone}:{message.sid}")
    finally:
        if sent or refused:
            with context.database.session() as session:
                notice = session.get(Notice, notice_id)
                if notice is not None:
                    notice.sms_sids = [*notice.sms_sids, *sent]  # reassign: JSON columns do not track appends
                    _add_failures(notice, refused)
    if retry:
        raise SmsNotSentYet("; ".join(retry))
    if refused and not sent and not anyone_texted:
        raise PermanentJobError("no manager could be texted: " + "; ".join(refused))
