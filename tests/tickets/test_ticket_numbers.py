"""Ticket numbers: the day's sequence, and (on PostgreSQL) a counter that concurrent calls never queue on."""

from __future__ import annotations

import time

import pytest

from ivr.tickets.operations import next_ticket_number
from tests.conftest import PG_URL


@pytest.mark.skipif(not PG_URL, reason="the counter's own transaction is PostgreSQL's; SQLite has one writer")
def test_a_webhook_holding_a_new_number_does_not_hold_up_the_next_caller(database):
    with database.session() as first:
        number = next_ticket_number(first, "Asia/Shanghai")
        started = time.monotonic()  # `first` is still open: its webhook has more to do
        with database.session() as second:
            following = next_ticket_number(second, "Asia/Shanghai")
        waited = time.monotonic() - started
    assert int(following[-3:]) == int(number[-3:]) + 1
    assert waited < 0.5, f"the second caller waited {waited:.2f} s for the first one's counter lock"


def test_numbers_follow_each_other_within_a_day(database):
    with database.session() as session:
        numbers = [next_ticket_number(session, "Asia/Shanghai") for _ in range(3)]
    assert [int(n[-3:]) for n in numbers] == [1, 2, 3]
    assert len({n[:6] for n in numbers}) == 1
