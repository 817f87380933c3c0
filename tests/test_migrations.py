"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ivr.models import Base


def test_migrations_match_the_models(database):
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_upgrading_twice_is_harmless(settings):
    from ivr.migrate import upgrade_database

    upgrade_database(settings.database_url)
    upgrade_database(settings.database_url)
