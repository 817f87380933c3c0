"""The frame around every webhook: find the call by CallSid, replay retries, commit once, never 500."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import cast

from flask import Response, request
from sqlalchemy import Table, and_, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from twilio.twiml.voice_response import VoiceResponse

from ivr.config import Settings
from ivr.db import lost_connection, utcnow
from ivr.models import Call, CallEvent, Ticket
from ivr.runtime import current_database, current_settings
from ivr.telephony.spool import Spool, new_entry
from ivr.telephony.twiml import render, twiml_response
from ivr.tickets.operations import get_or_create_call
from ivr.twilio_sids import CALL_SID, RECORDING_SID

log = logging.getLogger(__name__)

KEYPAD = re.compile(r"[0-9*#]+")
MAX_PARAM_CHARS = 512
MAX_DIGITS = 32


@dataclass
class Turn:
    """One webhook request for one call: the database session, the call row and the form."""

    session: Session
    call: Call
    form: dict[str, str]
    settings: Settings

    @property
    def digits(self) -> str:
        """Keypad input, or '' for silence; anything that is not keypad input reads as '?'."""
        raw = self.form.get("Digits", "").strip()
        if not raw:
            return ""
        if len(raw) > MAX_DIGITS or not KEYPAD.fullmatch(raw):
            return "?"
        return raw


def _stored_params(form: dict[str, str]) -> dict[str, str]:
    """Webhook parameters as kept on the call's timeline (bounded: parameters are untrusted)."""
    return {key[:64]: value[:MAX_PARAM_CHARS] for key, value in list(form.items())[:64]}


# Every step by path ("voice", "recording-status" …) with the parameter naming its call: the spool
# replays through the same steps.
WEBHOOKS: dict[str, tuple[Callable[[Turn], VoiceResponse], str]] = {}


def twilio_webhook(
    endpoint: str, *, on_error: Callable[[dict[str, str]], VoiceResponse], sid_param: str = "CallSid"
) -> Callable[[Callable[[Turn], VoiceResponse]], Callable[[], Response]]:
    """Wrap a step of the call. Retries with the same I-Twilio-Idempotency-Token get the first answer.
    A step that cannot complete (the database is down or locked past its timeout, or a bug) is spooled
    to disk for replay and the caller hears `on_error`'s answer to the form: never a 5xx, never Twilio's
    error voice."""

    def decorate(step: Callable[[Turn], VoiceResponse]) -> Callable[[], Response]:
        WEBHOOKS[endpoint] = (step, sid_param)

        @wraps(step)
        def view() -> Response:
            form = request.form.to_dict()  # the first value of each parameter
            call_sid = form.get(sid_param, "").strip()
            if not CALL_SID.fullmatch(call_sid):
                return Response(f"missing or malformed {sid_param}\n", status=400, mimetype="text/plain")
            recording_sid = form.get("RecordingSid", "")
            if recording_sid and not RECORDING_SID.fullmatch(recording_sid.strip()):
                return Response("malformed RecordingSid\n", status=400, mimetype="text/plain")
            token = request.headers.get("I-Twilio-Idempotency-Token", "")[:128] or None
            deadline = time.monotonic() + current_settings().db_timeout_seconds
            reconnected = False
            for attempt in range(3):
                try:
                    return twiml_response(run_step(step, endpoint, call_sid, form, token))
                except IntegrityError as exc:
                    # A concurrent request for the same call (or a retry) won a race; run again so
                    # we either replay its answer or build on what it wrote.
                    log.info("integrity race on %s for %s (attempt %d)", endpoint, call_sid, attempt + 1)
                    failure: Exception = exc
                    if time.monotonic() > deadline:
                        break
                except Exception as exc:
                    if lost_connection(exc) and not reconnected:
                        # The pool's connections predate a database restart (they are not pinged, see
                        # Database.webhook_session); nothing of this transaction was kept: once more.
                        log.info("database connection lost on %s for %s; running it again", endpoint, call_sid)
                        reconnected, failure = True, exc
                        continue
                    log.exception("webhook %s failed for %s; spooling it", endpoint, call_sid)
                    failure = exc
                    break
            _spool(form, token, failure)
            return twiml_response(render(on_error(form)))

        return view

    return decorate


def _spool(form: dict[str, str], token: str | None, failure: Exception) -> None:
    """Keep the request on disk for replay; if even that fails, the log is all that is left."""
    entry = new_entry(
        request.path,
        request.query_string.decode("latin-1"),
        form,
        request.headers.get("X-Twilio-Signature", ""),
        token,
        f"{type(failure).__name__}: {failure}",
    )
    try:
        Spool(current_settings().spool_dir).write(entry)
    except Exception:
        log.critical(
            "could not spool %s %s: %s",
            request.path,
            json.dumps(entry.form, ensure_ascii=False),
            entry.reason,
            exc_info=True,
        )


# The call, its ticket and its answer to this very webhook (a retry: same endpoint and
# I-Twilio-Idempotency-Token), in one query built once. Without a token `= NULL` matches no event, so nothing
# is replayed. The ticket comes as an entity of its own (a call has at most one) and is set on the call by
# hand: that costs less than joinedload's eager join, which adapts the join for every query.
CALL_WITH_REPLAY = (
    select(Call, Ticket, CallEvent.response)
    .outerjoin(Ticket, Ticket.call_id == Call.id)
    .outerjoin(
        CallEvent,
        and_(
            CallEvent.call_id == Call.id,
            CallEvent.endpoint == bindparam("endpoint"),
            CallEvent.idempotency_token == bindparam("token"),
        ),
    )
    .where(Call.call_sid == bindparam("call_sid"))
)
# The webhook's event, a Core insert into the table built once (the ORM's bulk path costs more per row).
RECORD_EVENT = insert(cast(Table, CallEvent.__table__))


def run_step(
    step: Callable[[Turn], VoiceResponse], endpoint: str, call_sid: str, form: dict[str, str], token: str | None
) -> str:
    """Run one step in one transaction: replay the stored answer for a known token, else run and store."""
    with current_database().webhook_session() as session:
        found = session.execute(CALL_WITH_REPLAY, {"call_sid": call_sid, "endpoint": endpoint, "token": token}).first()
        replay: str | None = found.response if found is not None else None
        if replay is not None:
            return replay  # a retry of this very webhook for this call gets the first answer
        known = None
        if found is not None:
            known = found.Call
            set_committed_value(known, "ticket", found.Ticket)  # loaded, as joinedload would have
        if call_sid == form.get("CallSid"):
            call = get_or_create_call(
                session,
                call_sid,
                found=known,
                account_sid=form.get("AccountSid"),
                from_number=form.get("From", "")[:64],
                to_number=form.get("To", "")[:64],
                direction=form.get("Direction", "")[:32],
            )
        else:  # a callback about a child call (a dialled number) belongs to its parent call
            call = get_or_create_call(session, call_sid, found=known)
        body = render(step(Turn(session, call, form, current_settings())))
        session.flush()  # what the step changed, then the event in one statement (it is only ever read back)
        session.connection().execute(  # a Core statement: nothing for the session to flush or load
            RECORD_EVENT,
            {
                "call_id": call.id,
                "at": utcnow(),
                "endpoint": endpoint,
                "params": _stored_params(form),
                "idempotency_token": token,
                "response": body,
            },
        )
    return body
