#!/usr/bin/env python3
"""The yardstick for scripts/bench_webhooks.py: a minimal Flask app on our stack doing a webhook's work.

Every POST /twilio/<step> checks X-Twilio-Signature with twilio's RequestValidator (over PUBLIC_URL +
path + query and the form, as /twilio/voice does), inserts one row with SQLAlchemy 2 in its own
transaction, and answers a Mandarin <Say> built with VoiceResponse. Nothing else: no call state, no
retries replayed. Served by waitress like `ivr serve`. On SQLite the insert waits for this process's
other writers on a lock (as ivr/db.py's write gate does) rather than in SQLite's busy handler, which
sleeps up to 100 ms between polls: the yardstick should not be slowed by a stall our own app avoids.

    MINIMAL_DATABASE_URL=sqlite:////tmp/m.sqlite3 TWILIO_AUTH_TOKEN=… PUBLIC_URL=http://127.0.0.1:5001 \\
        .venv/bin/python -m scripts.minimal_webhook_app --port 5001 --threads 8
"""

from __future__ import annotations

import argparse
import os
import threading
from contextlib import nullcontext
from datetime import UTC, datetime

from flask import Flask, Response, request
from sqlalchemy import DateTime, String, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse


class Base(DeclarativeBase):
    pass


class WebhookRequest(Base):
    """One row per webhook received."""

    __tablename__ = "minimal_webhook_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(64))
    idempotency_token: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def make_engine(url: str) -> Engine:
    """SQLite in WAL mode with the same lock wait as the line (2 s), or any other database as given."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=10, max_overflow=20)
    engine = create_engine(url, connect_args={"timeout": 2.0, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    return engine


def create_app(database_url: str, auth_token: str, public_url: str) -> Flask:
    """The app: one route for every webhook path, plus GET /healthz."""
    app = Flask(__name__)
    engine = make_engine(database_url)
    Base.metadata.create_all(engine)
    validator = RequestValidator(auth_token)
    write_lock = threading.Lock() if database_url.startswith("sqlite") else nullcontext()

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.post("/twilio/<path:endpoint>")
    def webhook(endpoint: str) -> Response:
        query = request.query_string.decode("latin-1")
        url = public_url + request.path + (f"?{query}" if query else "")
        if not validator.validate(url, request.form, request.headers.get("X-Twilio-Signature", "")):
            return Response("invalid signature\n", status=403, mimetype="text/plain")
        with write_lock, Session(engine) as session, session.begin():
            session.add(
                WebhookRequest(
                    call_sid=request.form.get("CallSid", "")[:64],
                    endpoint=endpoint[:64],
                    idempotency_token=request.headers.get("I-Twilio-Idempotency-Token"),
                    received_at=datetime.now(UTC),
                )
            )
        response = VoiceResponse()
        response.say("您好,物业服务中心,很高兴为您服务。", language="cmn-CN", voice="Polly.Zhiyu")
        return Response(str(response), mimetype="text/xml")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads (as `ivr serve --threads`)")
    args = parser.parse_args()
    from waitress import serve

    app = create_app(os.environ["MINIMAL_DATABASE_URL"], os.environ["TWILIO_AUTH_TOKEN"], os.environ["PUBLIC_URL"])
    serve(app, host="127.0.0.1", port=args.port, threads=args.threads, ident="minimal")


if __name__ == "__main__":
    main()
