"""Shared fixtures: settings, a fresh migrated database per test (SQLite, or PostgreSQL when
IVR_TEST_DATABASE_URL is set), the app, its client and CLI runner, and factories."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ivr import create_app
from ivr.config import Settings, load_settings
from ivr.db import Database
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.recording_server import RecordingServer
from ivr.devphone.transport import FlaskClientTransport
from ivr.jobs import GiveUpHook, JobHandler, JobKind, JobQueue, RetryHook, job, job_kind, register_kind, unregister_kind
from ivr.migrate import upgrade_database
from ivr.staff import create_token

PG_URL = os.environ.get("IVR_TEST_DATABASE_URL", "")


@pytest.fixture(scope="session")
def template_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrate once; each test copies this template (a file for SQLite, a template DB for PostgreSQL)."""
    if PG_URL:
        url = make_url(PG_URL)
        name = f"ivr_template_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        upgrade_database(url.set(database=name).render_as_string(hide_password=False))
        yield name
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "template.sqlite3"
        upgrade_database(f"sqlite:///{path}")
        yield str(path)


@pytest.fixture
def database_url(template_database: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated, empty database for one test."""
    if PG_URL:
        url = make_url(PG_URL)
        name = f"ivr_test_{uuid.uuid4().hex[:10]}"
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path / "ivr.sqlite3"
        shutil.copyfile(template_database, path)
        yield f"sqlite:///{path}"


@pytest.fixture
def settings_environ(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment the test settings are read from (also given to server and worker subprocesses)."""
    return {
        "IVR_ENV": "test",
        "IVR_INSTANCE_DIR": str(tmp_path / "instance"),
        "IVR_DATABASE_URL": database_url,
        "IVR_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "IVR_MODELS_DIR": str(tmp_path / "models"),  # no speech model unless a test installs one
        "IVR_PUBLIC_URL": "https://ivr.example.test",
        "IVR_PROPERTY_NAME": "幸福家园",
        "IVR_DUTY_NUMBERS": "+8613800000001,+8613800000002",
        "IVR_RECORDING_HOSTS": "api.twilio.com,127.0.0.1",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "test-auth-token-0123456789abcdef",
        "IVR_SECRET_KEY": "test-secret-key-" + "x" * 32,
    }


@pytest.fixture
def settings(settings_environ: dict[str, str]) -> Settings:
    """Test settings: known secrets, a temporary instance folder and recordings folder."""
    return load_settings(settings_environ)


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    """The test's database, opened like the app opens it."""
    db = Database(settings.database_url, timeout=settings.db_timeout_seconds)
    yield db
    db.dispose()


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """The app on the test database, with a real (SQLite-file) job queue and fast retries (0.05 s doubling,
    at most 0.2 s apart: a job left at 60 attempts takes about 12 s to give up, so tests lower its attempts)."""
    app = create_app(settings, retry_base_seconds=0.05, retry_cap_seconds=0.2)
    yield app
    app.extensions["ivr.database"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def queue(app: Flask) -> JobQueue:
    """The app's job queue (not consuming; see `worker`)."""
    return app.extensions["ivr.queue"]


@pytest.fixture
def worker(queue: JobQueue) -> Iterator[JobQueue]:
    """The embedded consumer running in background threads, as under `ivr serve`."""
    queue.start_embedded(workers=2)
    yield queue
    queue.stop_embedded()


DeclareJob = Callable[..., JobKind]


@pytest.fixture
def declare_job() -> Iterator[DeclareJob]:
    """Declare job kinds for one test as handlers do with @job: `declare_job("slow", run)` adds a throwaway
    kind, `declare_job("transcribe_recording", run, replacing=True)` stands in for a real one. Afterwards
    the registry is as it was."""
    declared: list[tuple[str, JobKind | None]] = []

    def declare(
        name: str,
        run: JobHandler,
        *,
        give_up: GiveUpHook = lambda context, subject_id, error: None,
        retried: RetryHook | None = None,
        replacing: bool = False,
    ) -> JobKind:
        real = job_kind(name)
        if replacing:
            if real is None:
                raise LookupError(f"no job kind {name!r} to replace")
            unregister_kind(name)
        kind = job(name, give_up=give_up, retried=retried)(run)  # a name already declared is refused here
        declared.append((name, real if replacing else None))
        return kind

    yield declare
    for name, real in reversed(declared):
        unregister_kind(name)
        if real is not None:
            register_kind(real)


@pytest.fixture
def recording_server(settings: Settings) -> Iterator[RecordingServer]:
    """Serves recordings the way Twilio does (basic auth), on a free loopback port."""
    with RecordingServer(settings.twilio_account_sid, settings.twilio_auth_token) as server:
        yield server


@pytest.fixture
def phone(app: Flask, settings: Settings, recording_server: RecordingServer) -> TwilioEmulator:
    """The dev phone driving whole calls through the app's webhooks, with real signatures."""
    return TwilioEmulator(
        FlaskClientTransport(app, settings.public_url),
        public_url=settings.public_url,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        recording_server=recording_server,
    )


@pytest.fixture
def api_token(database: Database) -> str:
    """A service token for the JSON API (no account: sees every ticket)."""
    with database.session() as session:
        return create_token(session, "tests", service=True)


@pytest.fixture
def twilio_api(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[responses.RequestsMock]:
    """Twilio's REST API replaced by recorded exchanges (tests.factories.replay); all must be used."""
    # The client would send these to a regional host instead of api.twilio.com.
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    assert settings.twilio_account_sid == "AC" + "0" * 32, "fixtures are recorded for this account"
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock
