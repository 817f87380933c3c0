"""The database: engine, sessions and the declarative base with a naming convention."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from sqlalchemy import DateTime, MetaData, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_frozen_now: ContextVar[datetime | None] = ContextVar("frozen_now", default=None)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (or the moment a replayed request arrived, see frozen_clock)."""
    return _frozen_now.get() or datetime.now(UTC)


@contextmanager
def frozen_clock(moment: datetime) -> Iterator[None]:
    """Within the block (this thread / context only), utcnow() is `moment`: a request replayed from the
    spool is stamped with when the caller made it, so its ticket's clocks start then."""
    reset = _frozen_now.set(moment)
    try:
        yield
    finally:
        _frozen_now.reset(reset)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always returned timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


DEFAULT_TIMEOUT_SECONDS = 2.0
# A safety net for every PostgreSQL statement; a webhook's are bounded by its timeout (Database.webhook_session).
STATEMENT_TIMEOUT_SECONDS = 30
WRITE_INTENT = "ivr_write_intent"  # an execution option: a Connection begun with it is a writer
# True while declare_write_intent begins a session's transaction (cheaper than the execution option, which
# SQLAlchemy merges into the connection's options on every webhook).
_beginning_as_writer: ContextVar[bool] = ContextVar("beginning_as_writer", default=False)
_WRITE_STATEMENT = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)


class DatabaseBusy(OperationalError):
    """This process's writers did not free SQLite's write lock in time."""


class WriteGate:
    """One SQLite writer at a time in this process. Waiters queue on a lock and wake the moment it is
    free, instead of sleeping in SQLite's busy handler (which sleeps up to 100 ms between polls)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for the gate; returns the seconds waited."""
        started = time.monotonic()
        if not self._lock.acquire(timeout=self.timeout):
            raise DatabaseBusy(
                "BEGIN IMMEDIATE",
                None,
                sqlite3.OperationalError(f"database is locked (no write lock within {self.timeout:g} s)"),
            )
        return time.monotonic() - started

    def release(self) -> None:
        self._lock.release()


def make_engine(url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS, webhooks: bool = False) -> Engine:
    """An engine whose every wait is bounded by `timeout` seconds (connect, locks, pool). `webhooks`: the
    PostgreSQL pool of the webhook frame (see Database.webhook_session)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, timeout)
    connect_args: dict[str, object] = {}
    if make_url(url).get_backend_name() == "postgresql":
        statement_ms = int(timeout * 1000) if webhooks else STATEMENT_TIMEOUT_SECONDS * 1000
        connect_args = {
            "connect_timeout": max(1, round(timeout)),
            "options": f"-c lock_timeout={int(timeout * 1000)} -c statement_timeout={statement_ms}",
        }
    return create_engine(
        url,
        pool_pre_ping=not webhooks,
        pool_size=10,
        max_overflow=20,
        pool_timeout=timeout,
        connect_args=connect_args,
    )


def _sqlite_engine(url: str, timeout: float) -> Engine:
    """SQLite in WAL mode. Transactions begin deferred, so reading never takes the write lock; a transaction
    that means to write (WRITE_INTENT, or its first write statement) first passes this process's WriteGate,
    and one begun with write intent takes the lock up front (BEGIN IMMEDIATE), so it cannot fail half-way."""
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False})
    gate = WriteGate(timeout)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")  # see take_gate
        cursor.close()
        # Let SQLAlchemy's begin event own transactions (see below).
        dbapi_connection.isolation_level = None

    full_ms = int(timeout * 1000)

    def take_gate(connection: Connection) -> None:
        if connection.info.get("gate"):
            return
        waited = gate.acquire()
        connection.info["gate"] = True
        # What the gate took comes off SQLite's own wait (another process's lock), so the whole wait stays
        # within `timeout`; PRAGMA only when the budget changes.
        budget_ms = full_ms if waited < 0.05 else max(50, int((timeout - waited) * 1000))
        if connection.info.get("busy_ms", full_ms) != budget_ms:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={budget_ms}")
            connection.info["busy_ms"] = budget_ms

    def end_transaction(connection: Connection, statement: str) -> None:
        try:
            dbapi_connection = connection.connection.dbapi_connection
            if dbapi_connection is not None and dbapi_connection.in_transaction:
                dbapi_connection.execute(statement)
        finally:
            if connection.info.pop("gate", False):
                gate.release()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # BEGIN goes to the driver's connection, as COMMIT does: a statement with nothing to bind or fetch
        # needs none of SQLAlchemy's statement machinery.
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None  # a connection that is beginning has one
        if _beginning_as_writer.get() or connection.get_execution_options().get(WRITE_INTENT):
            take_gate(connection)
            try:
                _driver_execute(dbapi_connection, "BEGIN IMMEDIATE")
            except BaseException:
                if connection.info.pop("gate", False):  # not already released by the rollback
                    gate.release()
                raise
        else:
            _driver_execute(dbapi_connection, "BEGIN")

    @event.listens_for(engine, "before_cursor_execute")
    def _gate_first_write(
        connection: Connection,
        _cursor: object,
        statement: str,
        _parameters: object,
        _context: object,
        _executemany: bool,
    ) -> None:
        if _WRITE_STATEMENT.match(statement) and connection.in_transaction():
            take_gate(connection)

    @event.listens_for(engine, "commit")
    def _commit(connection: Connection) -> None:
        end_transaction(connection, "COMMIT")  # SQLAlchemy's own commit() then finds nothing to do

    @event.listens_for(engine, "rollback")
    def _rollback(connection: Connection) -> None:
        end_transaction(connection, "ROLLBACK")

    return engine


def _driver_execute(dbapi_connection: DBAPIConnection, statement: str) -> None:
    """Run a transaction statement on the driver's connection; its error is SQLAlchemy's (an
    OperationalError for a lock not had in time), as if the statement had gone through an engine."""
    try:
        dbapi_connection.execute(statement)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc


@contextmanager
def unit_of_work(session: Session) -> Iterator[Session]:
    """Commit what the block did, or roll it back if it raised."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def dialect_insert(session: Session) -> Callable[..., postgresql.Insert | sqlite.Insert]:
    """The INSERT construct of the session's database (SQLite or PostgreSQL), which knows ON CONFLICT."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def declare_write_intent(session: Session) -> None:
    """Begin the session's transaction as a writer: on SQLite it takes the write lock now (after this
    process's other writers), so a read-then-write transaction never fails half-way on a busy lock."""
    if not session.in_transaction():
        reset = _beginning_as_writer.set(True)
        try:
            session.connection()  # begins the transaction, in this context
        finally:
            _beginning_as_writer.reset(reset)


def lost_connection(exc: BaseException) -> bool:
    """Whether `exc` is a statement that failed because the connection to the database was gone (a server
    restarted since the connection was made): the server has rolled the transaction back, and SQLAlchemy has
    discarded the pool's connections, so running the transaction again is safe. A lost COMMIT is not: it may
    have been applied."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated and exc.statement not in (None, "COMMIT")


class Database:
    """One engine and session factory per app / worker process."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.timeout = timeout
        self.engine = make_engine(url, timeout=timeout)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[Session]:
        """A unit of work on a new session: commits on success, rolls back on error. A writer unless
        `read_only` (which never waits for SQLite's write lock)."""
        with self._session(self.engine, read_only=read_only) as session:
            yield session

    @contextmanager
    def webhook_session(self) -> Iterator[Session]:
        """A writer's unit of work for one webhook. On PostgreSQL it comes from a pool of its own whose
        connections open with the webhook's statement timeout (`timeout`, where everything else has
        STATEMENT_TIMEOUT_SECONDS) and are not pinged on checkout: a webhook costs no round trip to set its
        timeout nor one to test the connection. Its caller runs the transaction again when the first use of
        a connection finds it gone (`lost_connection`), which pool_pre_ping did before. On SQLite, `session()`."""
        with self._session(self.webhook_engine, read_only=False) as session:
            yield session

    @cached_property
    def webhook_engine(self) -> Engine:
        """The engine of webhook_session: its own on PostgreSQL (made on first use), else `engine` (SQLite's
        write gate belongs to one engine)."""
        if self.engine.dialect.name != "postgresql":
            return self.engine
        return make_engine(self.url, timeout=self.timeout, webhooks=True)

    @contextmanager
    def _session(self, bind: Engine, *, read_only: bool) -> Iterator[Session]:
        # One session factory whatever the engine: what listens to it (the job queue's after_commit) hears both.
        session = self.sessionmaker(bind=bind)
        try:
            if not read_only:
                declare_write_intent(session)
            with unit_of_work(session):
                yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
        webhook_engine = self.__dict__.get("webhook_engine")
        if webhook_engine is not None and webhook_engine is not self.engine:
            webhook_engine.dispose()
