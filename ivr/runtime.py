"""Access to the per-app objects (settings, database, job queue) from inside a request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

from flask import current_app, g
from sqlalchemy.orm import Session

from ivr.config import Settings
from ivr.db import Database, declare_write_intent, unit_of_work

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
    """A unit of work on the request's session: commits on success, rolls back on error. It is a writer
    from its start (what the request read before it is ended first: reading never holds a lock)."""
    session = request_session()
    if session.in_transaction() and not session.new and not session.dirty and not session.deleted:
        session.commit()  # only reads so far; objects stay loaded (expire_on_commit=False)
    declare_write_intent(session)
    with unit_of_work(session):
        yield session
