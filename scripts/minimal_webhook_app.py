#!/usr/bin/env python3
"""The yardstick for scripts/bench_webhooks.py: a minimal Flask app doing a call's webhook work plainly.

Every POST /twilio/<step> checks X-Twilio-Signature with twilio's RequestValidator (over PUBLIC_URL +
path + query and the form, as ivr does), writes what ivr writes for that step with SQLAlchemy Core, one
transaction per webhook, and answers TwiML of the same shape built with VoiceResponse:

    voice             insert the call row (CallSid unique; a retry inserts nothing)      Gather(greeting, menu)
    menu              the call's category                                               Gather(ask for the room)
    room              the call's room                                                   Gather(room read back)
    room/confirm      the call's room confirmed                                         Say, Record
    recorded          the call (and its ticket) in one query; a new ticket takes the    Gather(read-back)
                      day's counter and is inserted; the recording (RecordingSid unique)
                      on it, and its download job (kind + subject unique)
    recording-status  the recording's status and channels (upserted on RecordingSid);   (empty)
                      completed: its download job (a no-op when it exists)
    confirm           the call's ticket confirmed, its number returned                  Say(number), Hangup
    status            the call's status, end and duration                               (empty)

What it leaves out is what a minimal app has no use for: no replay of retried webhooks (ivr stores each
webhook with its answer and looks it up), no timeline, no spool, no retry counters. Served by the same
server as `ivr serve` (ivr.server.serve_wsgi). On SQLite a transaction waits for this process's other
writers on a lock (as ivr/db.py's write gate does) rather than in SQLite's busy handler, which sleeps up to
100 ms between polls: the yardstick should not be slowed by a stall our own app avoids.

    MINIMAL_DATABASE_URL=sqlite:////tmp/m.sqlite3 TWILIO_AUTH_TOKEN=… PUBLIC_URL=http://127.0.0.1:5001 \\
        .venv/bin/python -m scripts.minimal_webhook_app --port 5001 --threads 8
"""

from __future__ import annotations

import argparse
import os
import threading
from contextlib import nullcontext
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Flask, Response, request
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from twilio.request_validator import RequestValidator
from twilio.twiml import TwiML
from twilio.twiml.voice_response import VoiceResponse

metadata = MetaData()
calls = Table(
    "minimal_calls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("call_sid", String(64), nullable=False, unique=True),
    Column("from_number", String(64)),
    Column("to_number", String(64)),
    Column("status", String(32)),
    Column("category", String(16)),
    Column("room", String(32)),
    Column("room_confirmed", Boolean, nullable=False, default=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("duration", Integer),
)
counters = Table(
    "minimal_ticket_counters",
    metadata,
    Column("day", String(8), primary_key=True),
    Column("last", Integer, nullable=False),
)
tickets = Table(
    "minimal_tickets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", String(20), nullable=False, unique=True),
    Column("call_id", ForeignKey("minimal_calls.id"), nullable=False, unique=True),
    Column("category", String(16)),
    Column("room", String(32)),
    Column("caller_number", String(64)),
    Column("confirmed", Boolean, nullable=False, default=False),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True)),
)
recordings = Table(
    "minimal_recordings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("recording_sid", String(64), nullable=False, unique=True),
    Column("call_id", ForeignKey("minimal_calls.id"), nullable=False),
    Column("ticket_id", ForeignKey("minimal_tickets.id")),
    Column("source_url", String(512)),
    Column("duration", Float),
    Column("status", String(32)),
    Column("channels", Integer),
)
jobs = Table(
    "minimal_jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("subject_id", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True)),
    UniqueConstraint("kind", "subject_id"),
)

LANGUAGE, VOICE = "cmn-CN", "Polly.Zhiyu"
CATEGORIES = {"1": "repair", "2": "complaint", "3": "fee", "9": "emergency"}
TIMEZONE = ZoneInfo("Asia/Shanghai")
# What the line says, about as long as ivr's prompts.
GREETING = (
    "您好,幸福家园物业服务中心,24小时服务热线,很高兴为您服务。报修请按1,投诉请按2,查询物业费请按3,人工服务请按0。"
)
ASK_ROOM = "请输入您的房号:楼栋号、星号键、单元号、星号键、房间号,最后按井号键。"
ROOM_READ_BACK = "您的房号是{room}。确认请按1,重新输入请按2。"
ASK_MESSAGE = "请在提示音后说出您要反映的问题,说完请按井号键。"
READ_BACK = "好的,您的留言已记录。您的房号是{room}。来电号码尾号{tail}。信息无误请按1,重新录音请按2,转人工服务请按0。"
CONFIRMED = "谢谢您,您的工单号是{number}。我们会尽快安排维修人员与您联系上门维修。感谢您的来电,再见。"


def make_engine(url: str) -> Engine:
    """SQLite in WAL mode with the same lock wait as the line (2 s), or any other database as given."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=10, max_overflow=20)
    engine = create_engine(url, connect_args={"timeout": 2.0, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    return engine


def say(parent: TwiML, text: str) -> None:
    parent.say(text, language=LANGUAGE, voice=VOICE)


def gather(response: VoiceResponse, action: str, text: str, **options: object) -> None:
    """A keypad Gather around a <Say>, and a Redirect should Twilio fall through it."""
    say(response.gather(input="dtmf", action=action, method="POST", action_on_empty_result=True, **options), text)
    response.redirect(action, method="POST")


def create_app(database_url: str, auth_token: str, public_url: str) -> Flask:
    """The app: one route for every webhook path, plus GET /healthz."""
    app = Flask(__name__)
    engine = make_engine(database_url)
    metadata.create_all(engine)
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    validator = RequestValidator(auth_token)
    write_lock = threading.Lock() if database_url.startswith("sqlite") else nullcontext()

    def url(path: str) -> str:
        return f"{public_url}/twilio/{path}"

    def schedule_download(connection: Connection, recording_id: int) -> None:
        connection.execute(
            insert(jobs)
            .values(kind="download_recording", subject_id=recording_id, state="queued", created_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=["kind", "subject_id"])
        )

    def voice(connection: Connection, form: dict[str, str], response: VoiceResponse) -> None:
        connection.execute(
            insert(calls)
            .values(
                call_sid=form["CallSid"],
                from_number=form.get("From"),
                to_number=form.get("To"),
                status=form.get("CallStatus"),
                started_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing(index_elements=["call_sid"])
        )
        gather(response, url("menu"), GREETING, num_digits=1, timeout=6)

    def menu(connection: Connection, form: dict[str, str], response: VoiceResponse) -> None:
        category = CATEGORIES.get(form.get("Digits", ""), "other")
        connection.execute(update(calls).where(calls.c.call_sid == form["CallSid"]).values(category=category))
        gather(response, url("room"), ASK_ROOM, finish_on_key="#", timeout=10)

    def room(connection: Connection, form: dict[str, str], response: VoiceResponse) -> None:
        keyed = form.get("Digits", "").rstrip("#").replace("*", "-")
        connection.execute(
            update(calls).where(calls.c.call_sid == form["CallSid"]).values(room=keyed, room_confirmed=False)
        )
        gather(response, url("room/confirm"), ROOM_READ_BACK.format(room=keyed), num_digits=1, timeout=6)

    def room_confirm(connection: Connection, form: dict[str, str], response: VoiceResponse) -> None:
        connection.execute(update(calls).where(calls.c.call_sid == form["CallSid"]).values(room_confirmed=True))
        say(response, ASK_MESSAGE)
        response.record(
            action=url("recorded"),
            method="POST",
            max_length=180,
            timeout=5,
            finish_on_key="#",
            play_beep=True,
            recording_status_callback=url("recording-status"),
            recording_status_callback_method="POST",
            recording_status_callback_event="completed absent",
        )
        response.redirect(url("record/empty"), method="POST")

    def recorded(connection: Connection, form: dict[str, str], response: VoiceResponse) -> None:
        call = connection.execute(
            select(calls.c.id, calls.c.category, calls.c.room, calls.c.from_number, tickets.c.id.label("ticket_id"))
            .outerjoin(tickets, tickets.c.call_id == calls.c.id)
            .where(calls.c.call_sid == form["CallSid"])
        ).one()
        ticket_id = call.ticket_id
        if ticket_id is None:
            now = datetime.now(UTC)
            day = now.astimezone(TIMEZONE).strftime("%y%m%d")
            sequence = connection.execute(
                insert(counters)
                .values(day=day, last=1)
                .on_conflict_do_update(index_elements=["day"], set_={"last": counters.c.last + 1})
                .returning(counters.c.last)
            ).scalar_one()
            ticket_id = connection.execute(
                insert(tickets)
                .values(
                    number=f"{day}{sequence:03d}",
                    call_id=call.id,
                    category=call.category,
                    room=call.room,
                    caller_number=call.from_number,
                    created_at=now,
                )
                .returning(tickets.c.id)
            ).scalar_one()
        recording_id = connection.execute(
            insert(recordings)
            .values(
                recording_sid=form["RecordingSid"],
                call_id=call.id,
                ticket_id=ticket_id,
                source_url=form.get("RecordingUrl"),
                duration=float(form.get("RecordingDuration") or 0),
            )
            .on_conflict_do_update(index_elements=["recording_sid"], set_={"ticket_id": ticket_id})
            .returning(recordings.c.id)
        ).scalar_one()
        schedule_download(connection, recording_id)
        read_back = READ_BACK.format(room=call.room, tail=(call.from_number or "")[-4:])
        gather(response, url("confirm"), read_back, num_digits=1, timeout=6)

    def recording_status(connection: Connection, form: dict[str, str], response: VoiceResponse) -> None:
        status = form.get("RecordingStatus")
        channels = int(form["RecordingChannels"]) if form.get("RecordingChannels", "").isdigit() else None
        call_id = select(calls.c.id).where(calls.c.call_sid == form["CallSid"]).scalar_subquery()
        recording_id = connection.execute(
            insert(recordings)
            .values(
                recording_sid=form["RecordingSid"],
                call_id=call_id,
                source_url=form.get("RecordingUrl"),
                status=status,
                channels=channels,
            )
            .on_conflict_do_update(index_elements=["recording_sid"], set_={"status": status, "channels": channels})
            .returning(recordings.c.id)
        ).scalar_one()
        if status == "completed":
            schedule_download(connection, recording_id)

    def confirm(connection: Connection, form: dict[str, str], response: VoiceResponse) -> None:
        call_id = select(calls.c.id).where(calls.c.call_sid == form["CallSid"]).scalar_subquery()
        number = connection.execute(
            update(tickets)
            .where(tickets.c.call_id == call_id)
            .values(confirmed=True, confirmed_at=datetime.now(UTC))
            .returning(tickets.c.number)
        ).scalar_one_or_none()
        say(response, CONFIRMED.format(number=number))
        response.pause(length=10)
        response.hangup()

    def status(connection: Connection, form: dict[str, str], response: VoiceResponse) -> None:
        duration = form.get("CallDuration", "")
        connection.execute(
            update(calls)
            .where(calls.c.call_sid == form["CallSid"])
            .values(
                status=form.get("CallStatus"),
                ended_at=datetime.now(UTC),
                duration=int(duration) if duration.isdigit() else None,
            )
        )

    def other(connection: Connection, form: dict[str, str], response: VoiceResponse) -> None:
        voice(connection, form, response)

    steps = {
        "voice": voice,
        "menu": menu,
        "room": room,
        "room/confirm": room_confirm,
        "recorded": recorded,
        "recording-status": recording_status,
        "confirm": confirm,
        "status": status,
    }

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.post("/twilio/<path:endpoint>")
    def webhook(endpoint: str) -> Response:
        query = request.query_string.decode("latin-1")
        signed = public_url + request.path + (f"?{query}" if query else "")
        if not validator.validate(signed, request.form, request.headers.get("X-Twilio-Signature", "")):
            return Response("invalid signature\n", status=403, mimetype="text/plain")
        form = request.form.to_dict()
        if not form.get("CallSid"):
            return Response("missing CallSid\n", status=400, mimetype="text/plain")
        response = VoiceResponse()
        with write_lock, engine.begin() as connection:
            steps.get(endpoint, other)(connection, form, response)
        return Response(str(response), mimetype="text/xml")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8, help="server threads (as `ivr serve --threads`)")
    args = parser.parse_args()
    from ivr.server import serve_wsgi

    environ = os.environ
    serve_wsgi(
        lambda: create_app(environ["MINIMAL_DATABASE_URL"], environ["TWILIO_AUTH_TOKEN"], environ["PUBLIC_URL"]),
        host="127.0.0.1",
        port=args.port,
        threads=args.threads,
        name="minimal",
    )


if __name__ == "__main__":
    main()
