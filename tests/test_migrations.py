"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select

from ivr.db import utcnow
from ivr.migrate import alembic_config, described_by_models, upgrade_database
from ivr.models import Base, Checkpoint

COMPARE = {"include_name": described_by_models}


def test_migrations_match_the_models(database):
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts=COMPARE), Base.metadata)
    assert differences == []


def test_upgrading_twice_is_harmless(settings, database):
    """Upgrading an up-to-date database (every `ivr init-db`, every `./scripts/run`) keeps it at the head
    revision, with the models' schema and its rows."""
    config = alembic_config(settings.database_url)
    head = ScriptDirectory.from_config(config).get_current_head()
    with database.session() as session:
        session.add(Checkpoint(name="kept", at=utcnow()))
    for _ in range(2):
        upgrade_database(settings.database_url)
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=COMPARE)
            assert context.get_current_revision() == head
            assert compare_metadata(context, Base.metadata) == []
        with database.session(read_only=True) as session:
            assert session.scalars(select(Checkpoint.name)).all() == ["kept"]
