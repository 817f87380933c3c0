"""Many properties on one line: `ivr property create | list`, a call belongs to the property of the number it
dialled (its greeting, duty phones, tickets and fee ledger), and a number no property has keeps today's line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ivr.cli import main
from ivr.cli_state import CliState
from ivr.devphone.callers import HANGUP, DialOutcome, Message
from ivr.fees.ledger import import_fee_rows, parse_fee_csv
from ivr.models import DEFAULT_PROPERTY_ID, Property, Resident
from tests.factories import FIXTURES, HELLO_WAV, ticket_for

EAST_LINE = "+862160000001"
EAST_DUTY = "+8613900000009"


def ivr(settings, *args: str):
    return CliRunner().invoke(main, list(args), obj=CliState(settings))


@pytest.fixture
def east(settings, database) -> int:
    """A second property, 东方花园, with its own line and duty phone (made before the app's first call)."""
    result = ivr(
        settings, "property", "create", "east", "--name", "东方花园", "--number", EAST_LINE, "--duty-number", EAST_DUTY
    )
    assert result.exit_code == 0, result.output
    with database.session(read_only=True) as session:
        return session.scalars(select(Property.id).where(Property.code == "east")).one()


def test_a_call_to_a_property_number_is_greeted_with_its_name_and_ticketed_there(phone, east, database):
    result = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "1"], to=EAST_LINE).raise_for_errors()
    assert result.transcript().startswith("您好,东方花园物业服务中心")
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.property_id == east and ticket.call.property_id == east


def test_a_number_no_property_has_keeps_the_default_line(phone, east, database):
    result = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "1"], to="+861099999999").raise_for_errors()
    assert result.transcript().startswith("您好,幸福家园物业服务中心")  # IVR_PROPERTY_NAME
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.property_id == DEFAULT_PROPERTY_ID


def dial_twiml(result) -> str:
    return next(exchange.body for exchange in result.requests if "<Dial" in exchange.body)


def test_a_person_is_rung_on_the_property_duty_phones(phone, east):
    own = dial_twiml(phone.call(["0", DialOutcome("completed")], to=EAST_LINE).raise_for_errors())
    assert EAST_DUTY in own and "+8613800000001" not in own
    company = dial_twiml(phone.call(["0", DialOutcome("completed")]).raise_for_errors())
    assert "+8613800000001" in company and EAST_DUTY not in company  # IVR_DUTY_NUMBERS


def test_each_property_has_its_own_fee_ledger(phone, east, database):
    with database.session() as session:
        import_fee_rows(session, parse_fee_csv((FIXTURES / "fees" / "valid.csv").read_bytes()), east)
        for property_id in (east, DEFAULT_PROPERTY_ID):  # the caller's number, registered for the room in both
            session.add(Resident(property_id=property_id, room="3-2-501", phone="+8613912345678"))
    here = phone.call(["3", "1", HANGUP], to=EAST_LINE).raise_for_errors()
    assert "三栋二单元五零一室目前待缴费用如下" in here.transcript()
    elsewhere = phone.call(["3", "1", HANGUP]).raise_for_errors()
    assert "没有查到三栋二单元五零一室的缴费记录" in elsewhere.transcript()


def test_property_create_updates_lists_and_refuses_what_cannot_be(settings, east):
    assert ivr(settings, "property", "create", "east", "--timezone", "Asia/Urumqi").exit_code == 0
    listed = ivr(settings, "property", "list").output
    assert "east\t东方花园\tnumbers: +862160000001\tduty: +8613900000009\tAsia/Urumqi" in listed
    assert "default\t幸福家园*" in listed and "duty: +8613800000001, +8613800000002*" in listed

    taken = ivr(settings, "property", "create", "west", "--name", "西城", "--number", EAST_LINE)
    assert taken.exit_code != 0 and "+862160000001 is already the number of property 'east'" in taken.output
    unnamed = ivr(settings, "property", "create", "north")
    assert unnamed.exit_code != 0 and "give its name (--name)" in unnamed.output
    bad = ivr(settings, "property", "create", "east", "--number", "62345678")
    assert bad.exit_code != 0 and "not an E.164 phone number" in bad.output
    zone = ivr(settings, "property", "create", "east", "--timezone", "Mars/Olympus")
    assert zone.exit_code != 0 and "is not known" in zone.output
    code = ivr(settings, "property", "create", "东方", "--name", "东方")
    assert code.exit_code != 0 and "lowercase letters" in code.output


def test_fees_import_goes_to_the_named_property(settings, east, database, tmp_path):
    imported = ivr(settings, "fees", "import", str(FIXTURES / "fees" / "valid.csv"), "--property", "east")
    assert imported.exit_code == 0, imported.output
    assert ivr(settings, "fees", "show", "3-2-501", "--property", "east").exit_code == 0
    assert ivr(settings, "fees", "show", "3-2-501").exit_code == 1  # the default property's ledger is empty
    unknown = ivr(settings, "fees", "import", str(FIXTURES / "fees" / "valid.csv"), "--property", "nowhere")
    assert unknown.exit_code != 0 and "no property 'nowhere' (there are: default, east)" in unknown.output


def test_a_property_keeps_its_own_follow_up_call_windows_and_refuses_bad_ones(settings, east):
    saved = ivr(
        settings,
        "property",
        "create",
        "east",
        "--call-windows",
        "09:00-11:00, 14:00-16:00",
        "--days-off",
        "sun,2027-02-17",
    )
    assert saved.exit_code == 0, saved.output
    listed = ivr(settings, "property", "list").output
    assert "calls: 09:00-11:00,14:00-16:00\tdays off: sun,2027-02-17\n" in listed
    assert "calls: 09:00-11:30,13:30-17:30,19:30-20:30*\tdays off: -*" in listed  # the default property

    window = ivr(settings, "property", "create", "east", "--call-windows", "9-11")
    assert window.exit_code != 0 and "--call-windows: call window '9-11' is not HH:MM-HH:MM" in window.output
    overlap = ivr(settings, "property", "create", "east", "--call-windows", "09:00-12:00,11:00-13:00")
    assert (
        overlap.exit_code != 0 and "--call-windows: call windows 09:00-12:00 and 11:00-13:00 overlap" in overlap.output
    )
    day = ivr(settings, "property", "create", "east", "--days-off", "sunday,2027-02-30")
    assert day.exit_code != 0 and "--days-off: day off '2027-02-30' is neither a weekday" in day.output
    never = ivr(settings, "property", "create", "east", "--days-off", "mon,tue,wed,thu,fri,sat,sun")
    assert never.exit_code != 0 and "--days-off: every weekday is a day off" in never.output
    assert "calls: 09:00-11:00,14:00-16:00\tdays off: sun,2027-02-17\n" in ivr(settings, "property", "list").output

    assert ivr(settings, "property", "create", "east", "--call-windows", "", "--days-off", "none").exit_code == 0
    assert "calls: 09:00-11:30,13:30-17:30,19:30-20:30*\tdays off: -\n" in ivr(settings, "property", "list").output


def test_the_greeting_s_menu_is_under_each_app_s_own_public_url(settings):
    from ivr import create_app
    from tests.factories import call_params, signed_post

    for public_url in ("https://one.example.test", "https://two.example.test"):
        own = settings.replace(public_url=public_url)
        app = create_app(own)
        try:
            answer = signed_post(app.test_client(), own, "/twilio/voice", call_params()).get_data(as_text=True)
        finally:
            app.extensions["ivr.database"].dispose()
        assert f'action="{public_url}/twilio/menu"' in answer, answer
