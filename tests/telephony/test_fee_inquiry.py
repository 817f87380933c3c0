"""Fee inquiry by phone: what the ledger says the room owes (told to a number registered for the room: more in
test_resident_rooms.py), then message / person / menu."""

from __future__ import annotations

import pytest

from ivr.devphone.callers import HANGUP, DialOutcome, Message
from ivr.fees.ledger import import_fee_rows, parse_fee_csv
from ivr.models import Category, Resident
from tests.factories import FIXTURES, HELLO_WAV, ticket_for


@pytest.fixture
def ledger(database):
    with database.session() as session:
        import_fee_rows(session, parse_fee_csv((FIXTURES / "fees" / "valid.csv").read_bytes()))


def register(database, room: str, phone: str = "+8613912345678") -> None:
    """The caller's number (the dev phone's default From) registered for `room`: amounts are told to it."""
    with database.session() as session:
        session.add(Resident(property_id=1, room=room, phone=phone))


def test_a_room_that_owes_hears_each_fee_with_amount_and_due_date(phone, ledger, database):
    register(database, "3-2-501")
    result = phone.call(["3", "1", HANGUP]).raise_for_errors()  # 1: yes, the room offered is mine
    text = result.transcript()
    assert "三栋二单元五零一室目前待缴费用如下" in text
    assert "物业费,2026-10,应缴三百五十六元五角,缴费截止日期2026年10月31日" in text
    assert "停车费" in text and "一千二百元" in text
    assert "合计" in text
    assert "关于物业费留言请按1" in text


def test_a_room_that_owes_nothing_is_told_so(phone, ledger, database):
    register(database, "3-2-502")
    result = phone.call(["3", "1", HANGUP]).raise_for_errors()
    assert "三栋二单元五零二室目前没有待缴费用" in result.transcript()


def test_an_unknown_room_is_told_it_is_not_in_the_records(phone, ledger, database):
    register(database, "9-9-909")
    result = phone.call(["3", "1", HANGUP]).raise_for_errors()
    assert "没有查到九栋九单元九零九室的缴费记录" in result.transcript()


def test_after_the_balance_the_caller_can_leave_a_fee_message(phone, ledger, database):
    result = phone.call(["3", "3*2*501#", "1", "1", Message(HELLO_WAV), "1"]).raise_for_errors()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.category == Category.FEE and ticket.room == "3-2-501" and ticket.confirmed
    assert "财务人员会尽快与您联系" in result.transcript()


def test_after_the_balance_the_caller_can_go_back_to_the_menu_or_to_a_person(phone, ledger, database):
    back = phone.call(["3", "3*2*501#", "1", "9", "1", "3*2*501#", "1", Message(HELLO_WAV), "1"]).raise_for_errors()
    ticket = ticket_for(database, back.call_sid)
    assert ticket is not None and ticket.category == Category.REPAIR
    person = phone.call(["3", "3*2*501#", "1", "0", DialOutcome("completed")]).raise_for_errors()
    assert person.last("dial").params["DialCallStatus"] == "completed"
    assert ticket_for(database, person.call_sid) is None  # fee questions answered need no ticket
