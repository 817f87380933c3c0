"""Shared by the durability tests: time budgets, row counts that must not grow on replays, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import func, select

from ivr.db import Database
from ivr.devphone.faults import (  # noqa: F401  (re-exported for the tests)
    HookedTransport,
    ServeProcess,
    ThrowawayPostgres,
    postgres_bindir,
    sqlite_locked_by_another_process,
)
from ivr.models import CallEvent, Recording, Ticket

TWILIO_TIMEOUT_SECONDS = 15.0
ANSWER_WITHIN_SECONDS = 5.0


def counts(database: Database) -> dict[str, int]:
    """Rows that must not be duplicated by retries or replays."""
    with database.session(read_only=True) as session:
        return {
            "tickets": session.scalar(select(func.count()).select_from(Ticket)) or 0,
            "recordings": session.scalar(select(func.count()).select_from(Recording)) or 0,
            "events": session.scalar(select(func.count()).select_from(CallEvent)) or 0,
        }


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()
