"""Access to the per-app objects (settings, database, job queue) from inside a request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

from flask import current_app, g
from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.db import Database, unit_of_work

if TYPE_CHECKING:
    from ivr.jobs import JobQueue


def current_settings() -> Settings:
    return cast(Settings, current_app.config["IVR"])


def current_database() -> Database:
    return cast(Database, current_app.extensions["ivr.database"])


def current_queue() -> JobQueue | None:
    return cast("JobQueue | None", current_app.extensions.get("ivr.queue"))


def request_session() -> Session:
    """The console request's one database session (templates, the logged-in user and the view share it,
    so a request never waits on its own transaction). Rolled back at teardown unless committed."""
    if "db_session" not in g:
        g.db_session = current_database().sessionmaker()
    return cast(Session, g.db_session)


def close_request_session(_error: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()


@contextmanager
def request_transaction() -> Iterator[Session]:
    """A unit of work on the request's session: commits on success, rolls back on error."""
    with unit_of_work(request_session()) as session:
        yield session
