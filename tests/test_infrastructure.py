"""The test infrastructure itself: the per-test database is the one asked for, migrated; Redis answers."""

from __future__ import annotations

import os

import pytest
import redis
from sqlalchemy import inspect

from ivr.db import Database


def test_database_is_the_requested_dialect_and_migrated(database: Database) -> None:
    expected = "postgresql" if os.environ.get("IVR_TEST_DATABASE_URL") else "sqlite"
    assert database.engine.dialect.name == expected

    tables = set(inspect(database.engine).get_table_names())
    assert {"tickets", "calls", "alembic_version"} <= tables


@pytest.mark.redis
def test_redis_answers_ping() -> None:
    url = os.environ.get("IVR_TEST_REDIS_URL")
    if not url:
        pytest.skip("IVR_TEST_REDIS_URL is not set (scripts/test starts a redis-server when it can)")
    with redis.Redis.from_url(url) as client:
        assert client.ping() is True
