"""Schema management through Alembic (the only way the schema is created or changed)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from ivr.config import REPO_ROOT

MIGRATIONS_DIR = REPO_ROOT / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at our migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Create the schema or bring it up to `revision`."""
    command.upgrade(alembic_config(database_url), revision)


# The search indexes of migration 0006 (FTS5 tables and their shadow tables on SQLite, GIN expression indexes
# on PostgreSQL) are raw DDL that the models do not describe: autogenerate and the schema check leave them be.
SEARCH_INDEX_PREFIX = "search_"


def described_by_models(name: str | None, type_: str, _parent_names: object = None) -> bool:
    """Alembic's include_name: whether autogenerate compares this object with the models."""
    return not (type_ in {"table", "index"} and (name or "").startswith(SEARCH_INDEX_PREFIX))
