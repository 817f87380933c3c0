"""GET /healthz: is the database reachable, which queue, is a speech model loaded, is anything spooled, how
many takes are transcribed live."""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from ivr.runtime import current_database, current_queue, current_settings
from ivr.speech.status import speech_model_status
from ivr.telephony.media import live_pool, live_transcription_on
from ivr.telephony.spool import Spool

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 with a small JSON status when the database answers, 503 when it does not. Requests waiting in
    the spool make the status `degraded` (still 200: the line takes calls)."""
    status: dict[str, object] = {"status": "ok"}
    database_up = True
    try:
        with current_database().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        status["database"] = "ok"
    except Exception as exc:  # the probe's job is to report, not to fail
        database_up = False
        status.update(status="degraded", database=f"unreachable: {type(exc).__name__}")
    queue = current_queue()
    status["queue"] = queue.backend if queue else "none"
    status["speech_model"] = speech_model_status(current_settings())
    spooled = Spool(current_settings().spool_dir).status()
    status["spool"] = {
        "pending": spooled.pending,
        "failed": spooled.failed,
        "oldest": spooled.oldest.isoformat() if spooled.oldest else None,
    }
    if not spooled.empty:
        status["status"] = "degraded"
    pool, settings = live_pool(), current_settings()
    status["live_transcription"] = {
        "on": live_transcription_on(settings),
        "capacity": pool.capacity,
        "active": pool.active,
        **asdict(pool.counts),
    }
    return jsonify(status), 200 if database_up else 503


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
