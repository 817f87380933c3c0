"""The cheaper paths of the webhook frame do what the slower ones did: the signature, the SQLite
transaction's BEGIN and the queue file's durability."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from ivr.config import Settings
from ivr.db import Database
from ivr.jobs import make_huey
from ivr.telephony.security import twilio_signature


@pytest.mark.parametrize(
    "form",
    [
        MultiDict([("To", "+862100000000"), ("Digits", "1"), ("Digits", "2"), ("Digits", "1"), ("中文", "房号 ü")]),
        MultiDict(),
        {"CallSid": "CA" + "1" * 32, "AccountSid": "AC" + "2" * 32},
    ],
)
@pytest.mark.parametrize(
    "url", ["https://line.example.com/twilio/voice", "http://127.0.0.1:5000/twilio/read-back?take=RE1"]
)
def test_the_signature_is_twilios(form: MultiDict[str, str] | dict[str, str], url: str) -> None:
    assert twilio_signature("auth-token", url, form) == RequestValidator("auth-token").compute_signature(url, form)


def test_a_begin_that_cannot_have_sqlites_lock_fails_as_sqlalchemys_operational_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    database = Database(f"sqlite:///{path}", timeout=0.2)
    with database.session() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(OperationalError, match="database is locked"), database.session() as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    with database.session() as session:  # the gate was given back: the next writer gets in
        session.execute(text("INSERT INTO t VALUES (2)"))
    with database.session(read_only=True) as session:
        assert session.execute(text("SELECT x FROM t")).scalars().all() == [2]
    database.dispose()


def test_the_queue_file_syncs_at_checkpoints_not_on_every_message(settings: Settings) -> None:
    huey = make_huey(settings)
    connection = huey.storage.conn
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert connection.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
