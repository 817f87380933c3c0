"""Access to the per-app objects (settings, database, job queue) from inside a request."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app

from ivr.config import Settings
from ivr.db import Database

if TYPE_CHECKING:
    from ivr.jobs import JobQueue


def current_settings() -> Settings:
    return cast(Settings, current_app.config["IVR"])


def current_database() -> Database:
    return cast(Database, current_app.extensions["ivr.database"])


def current_queue() -> JobQueue | None:
    return cast("JobQueue | None", current_app.extensions.get("ivr.queue"))
