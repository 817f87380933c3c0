"""Residents the line knows: a caller whose number is registered for rooms of the dialled property is offered
them before any room entry, and a room's arrears are told only to a number registered for it (audited)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from ivr.devphone.callers import HANGUP, SILENCE, Message
from ivr.fees.ledger import import_fee_rows, parse_fee_csv
from ivr.models import AuditEvent, Category, Resident
from ivr.properties import save_property
from tests.factories import FIXTURES, HELLO_WAV, ticket_for

RESIDENT = "+8613912345678"
LANDLORD = "+8613700000007"  # registered for two rooms
STRANGER = "+8613600000006"  # registered for nothing
EAST_LINE = "+862160000001"
ASK_ROOM = "请输入您的房号"
OFFER_ONE = "请问您是三栋二单元五零一室的住户吗?是请按1,不是请按2。"
OFFER_TWO = "请问您是哪一户的住户?三栋二单元五零一室请按1,五栋一单元二零二室请按2,都不是请按9。"
AMOUNT = "物业费,2026-10,应缴三百五十六元五角"
PRIVATE = "为保护住户隐私,房屋欠费金额只告知在物业登记了来电号码的住户"


@pytest.fixture
def east(database) -> int:
    """A second property with its own line (made before the app's first call)."""
    with database.session() as session:
        return save_property(session, "east", name="东方花园", numbers=(EAST_LINE,)).id


@pytest.fixture
def registered(database, east):
    """The default property knows RESIDENT in 3-2-501 and LANDLORD in 5-1-202 and 3-2-501; east knows STRANGER."""
    with database.session() as session:
        session.add_all(
            [
                Resident(property_id=1, room="3-2-501", name="张伟", phone=RESIDENT),
                Resident(property_id=1, room="5-1-202", name="陈红", phone=LANDLORD),
                Resident(property_id=1, room="3-2-501", name="陈红", phone=LANDLORD),
                Resident(property_id=east, room="3-2-501", name="王芳", phone=STRANGER),
            ]
        )


@pytest.fixture
def ledger(database):
    with database.session() as session:
        import_fee_rows(session, parse_fee_csv((FIXTURES / "fees" / "valid.csv").read_bytes()))


def fee_audit(database) -> list[tuple[str, str, str, dict]]:
    with database.session() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action.like("fee_%")).order_by(AuditEvent.id))
        return [(e.action, e.actor, e.via, {k: v for k, v in e.detail.items() if k != "call"}) for e in rows]


def test_a_registered_caller_presses_1_and_skips_the_room_entry(phone, database, registered):
    result = phone.call(["1", "1", Message(HELLO_WAV), "1"], from_=RESIDENT).raise_for_errors()
    text = result.transcript()
    assert OFFER_ONE in text
    assert ASK_ROOM not in text and "确认请按1,重新输入请按2" not in text
    assert "您的房号是三栋二单元五零一室" in text  # the read-back (E4)
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.confirmed
    assert (ticket.category, ticket.room, ticket.room_from_registry) == (Category.REPAIR, "3-2-501", True)


def test_a_caller_of_several_rooms_chooses_one_by_key(phone, database, registered):
    result = phone.call(["2", "2", Message(HELLO_WAV), "1"], from_=LANDLORD).raise_for_errors()
    assert OFFER_TWO in result.transcript()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and (ticket.room, ticket.room_from_registry) == ("5-1-202", True)


def test_2_is_not_mine_and_the_room_is_keyed_as_usual(phone, database, registered):
    result = phone.call(["1", "2", "7*1*701#", "1", Message(HELLO_WAV), "1"], from_=RESIDENT).raise_for_errors()
    assert ASK_ROOM in result.transcript()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and (ticket.room, ticket.room_from_registry) == ("7-1-701", False)


def test_9_is_none_of_these_rooms(phone, database, registered):
    result = phone.call(["1", "9", "7*1*701#", "1", Message(HELLO_WAV), "1"], from_=LANDLORD).raise_for_errors()
    assert ASK_ROOM in result.transcript()
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and (ticket.room, ticket.room_from_registry) == ("7-1-701", False)


def test_silence_is_asked_again_then_the_room_is_keyed(phone, database, registered):
    steps = ["1", SILENCE, SILENCE, SILENCE, "7*1*701#", "1", Message(HELLO_WAV), "1"]
    result = phone.call(steps, from_=RESIDENT).raise_for_errors()
    text = result.transcript()
    assert text.count(OFFER_ONE) == 3 and text.count("对不起,我没有听到您的按键") == 2  # E7
    assert text.index(ASK_ROOM) > text.rindex(OFFER_ONE)
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and (ticket.room, ticket.room_from_registry) == ("7-1-701", False)


def test_a_wrong_key_is_apologised_for_and_the_rooms_offered_again(phone, database, registered):
    result = phone.call(["1", "7", "1", Message(HELLO_WAV), "1"], from_=LANDLORD).raise_for_errors()
    text = result.transcript()
    assert text.count(OFFER_TWO) == 2 and "对不起,您按的键无效" in text
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and (ticket.room, ticket.room_from_registry) == ("3-2-501", True)


def test_an_unregistered_caller_keys_the_room_as_before(phone, database, registered):
    result = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "1"], from_=STRANGER).raise_for_errors()
    assert "住户吗" not in result.transcript() and "哪一户" not in result.transcript()
    assert ASK_ROOM in result.said[2]  # straight after the menu
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and (ticket.room, ticket.room_from_registry) == ("3-2-501", False)


def test_a_number_registered_in_another_property_is_not_offered_its_room(phone, database, registered, east):
    here = phone.call(["1", HANGUP], from_=STRANGER, to=EAST_LINE).raise_for_errors()
    assert OFFER_ONE in here.transcript()  # east knows STRANGER in 3-2-501
    elsewhere = phone.call(["1", HANGUP], from_=RESIDENT, to=EAST_LINE).raise_for_errors()
    assert "住户吗" not in elsewhere.transcript() and ASK_ROOM in elsewhere.transcript()


def test_the_registry_is_looked_up_once_per_call_on_its_index(phone, database, registered):
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "FROM residents" in statement:
            seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:  # the menu, a wrong key, the choice, the message, the read-back: five webhooks, one look-up
        phone.call(["1", "7", "1", Message(HELLO_WAV), "1"], from_=LANDLORD).raise_for_errors()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert len(seen) == 1, seen
    with database.session() as session:
        if session.get_bind().dialect.name == "sqlite":
            statement, parameters = seen[0]
            plan = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            assert "ix_residents_property_phone" in str(plan), plan


# --- fees: told only to the room's own residents ------------------------------------------------


def test_a_registered_caller_hears_their_room_arrears_and_it_is_audited(phone, database, registered, ledger):
    result = phone.call(["3", "1", HANGUP], from_=RESIDENT).raise_for_errors()
    assert AMOUNT in result.transcript() and PRIVATE not in result.transcript()
    assert fee_audit(database) == [
        ("fee_told", f"caller:{RESIDENT}", "phone", {"room": "3-2-501", "property": "default"})
    ]


def test_another_number_hears_the_fee_standards_and_the_front_desk_not_the_amounts(phone, database, registered, ledger):
    result = phone.call(["3", "3*2*501#", "1", HANGUP], from_=STRANGER).raise_for_errors()
    text = result.transcript()
    assert PRIVATE in text and "收费标准" in text and "物业服务中心前台查询,或转人工服务" in text
    assert "应缴" not in text and "合计" not in text and "三百五十六" not in text
    assert "关于物业费留言请按1" in text  # still a message, a person or the menu
    assert fee_audit(database) == [
        ("fee_refused", f"caller:{STRANGER}", "phone", {"room": "3-2-501", "property": "default"})
    ]


def test_a_resident_who_keys_someone_else_room_is_refused_too(phone, database, registered, ledger):
    result = phone.call(["3", "2", "3*2*502#", "1", HANGUP], from_=RESIDENT).raise_for_errors()
    assert PRIVATE in result.transcript() and "目前没有待缴费用" not in result.transcript()
    assert [row[0] for row in fee_audit(database)] == ["fee_refused"]


def test_a_resident_who_keys_their_own_room_is_told(phone, database, registered, ledger):
    """Declining the offer and keying a room registered for the number is still the number's own room."""
    result = phone.call(["3", "9", "3*2*501#", "1", HANGUP], from_=LANDLORD).raise_for_errors()
    assert AMOUNT in result.transcript()
    assert [row[0] for row in fee_audit(database)] == ["fee_told"]


def test_a_withheld_number_is_refused(phone, database, registered, ledger):
    result = phone.call(["3", "3*2*501#", "1", HANGUP], from_="anonymous").raise_for_errors()
    assert PRIVATE in result.transcript()
    assert fee_audit(database) == [
        ("fee_refused", "caller:anonymous", "phone", {"room": "3-2-501", "property": "default"})
    ]
