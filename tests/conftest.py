"""Shared fixtures: settings, a fresh migrated database per test (SQLite, or PostgreSQL when
IVR_TEST_DATABASE_URL is set), the app, its client and CLI runner, and factories."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ivr.config import Settings, load_settings
from ivr.db import Database
from ivr.migrate import upgrade_database

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
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Test settings: known secrets, a temporary instance folder and recordings folder."""
    environ = {
        "IVR_ENV": "test",
        "IVR_INSTANCE_DIR": str(tmp_path / "instance"),
        "IVR_DATABASE_URL": database_url,
        "IVR_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "IVR_PUBLIC_URL": "https://ivr.example.test",
        "IVR_PROPERTY_NAME": "幸福家园",
        "IVR_DUTY_NUMBERS": "+8613800000001,+8613800000002",
        "IVR_RECORDING_HOSTS": "api.twilio.com,127.0.0.1",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "test-auth-token-0123456789abcdef",
        "IVR_SECRET_KEY": "test-secret-key-" + "x" * 32,
    }
    return load_settings(environ)


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    """The test's database, opened like the app opens it."""
    db = Database(settings.database_url)
    yield db
    db.dispose()
