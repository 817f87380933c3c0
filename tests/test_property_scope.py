"""Staff by property: `ivr user create --property`, `ivr user properties`, the accounts page, the console's
property filter and selector, and the API's `property` field and filter, driven through the front doors (the
route × role table for properties is in tests/test_access_policy.py)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from flask_login import login_user
from sqlalchemy import select

from ivr.cli import main
from ivr.cli_state import CliState
from ivr.devphone.callers import Message
from ivr.models import User
from ivr.staff import create_token, create_user, set_properties
from ivr.web.access import console_evaluation_scope, console_ticket_scope
from ivr.web.auth import StaffUser
from tests.factories import HELLO_WAV, PASSWORD, create_ticket, csrf_from, login, ticket_for
from tests.test_access_policy import add_properties

EAST_LINE, WEST_LINE = "+862160000001", "+862160000002"  # the numbers add_properties gives east and west


def ivr(settings, *args: str):
    return CliRunner().invoke(main, list(args), obj=CliState(settings))


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def properties_of(database, username: str) -> list[str]:
    with database.session(read_only=True) as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        return [p.code for p in user.properties]


@pytest.fixture
def properties(app, database) -> dict[str, int]:
    return add_properties(app, database)


# The command -----------------------------------------------------------------------------------------------


def test_user_create_takes_properties_and_user_properties_changes_them(settings, database, properties):
    made = ivr(
        settings, "user", "create", "e-wang", "--role", "night_shift", "--property", "east", "--password", PASSWORD
    )
    assert made.exit_code == 0, made.output
    assert "user 'e-wang' created with role night_shift, for east" in made.output
    assert properties_of(database, "e-wang") == ["east"]

    company = ivr(settings, "user", "create", "hq", "--role", "manager", "--password", PASSWORD)
    assert "for the whole company" in company.output and properties_of(database, "hq") == []

    assert ivr(settings, "user", "properties", "e-wang").output.strip() == "'e-wang' works for east"
    both = ivr(settings, "user", "properties", "e-wang", "west", "EAST")
    assert both.exit_code == 0 and both.output.strip() == "'e-wang' now works for east, west"
    assert properties_of(database, "e-wang") == ["east", "west"]
    widened = ivr(settings, "user", "properties", "e-wang", "--company-wide")
    assert widened.output.strip() == "'e-wang' now works for the whole company"
    assert properties_of(database, "e-wang") == []


def test_unknown_properties_are_refused_naming_the_ones_there_are(settings, database, properties):
    refused = ivr(settings, "user", "create", "x", "--role", "qa", "--property", "north", "--password", PASSWORD)
    assert refused.exit_code != 0
    assert "no property 'north' (there are: default, east, west)" in refused.output
    with database.session(read_only=True) as session:
        assert session.scalars(select(User).where(User.username == "x")).first() is None
    ivr(settings, "user", "create", "e-zhang", "--role", "qa", "--property", "east", "--password", PASSWORD)
    kept = ivr(settings, "user", "properties", "e-zhang", "west", "north")
    assert kept.exit_code != 0 and "no property 'north'" in kept.output
    assert properties_of(database, "e-zhang") == ["east"]  # nothing changed
    both = ivr(settings, "user", "properties", "e-zhang", "west", "--company-wide")
    assert both.exit_code != 0 and "not both" in both.output
    nobody = ivr(settings, "user", "properties", "nobody", "east")
    assert nobody.exit_code != 0 and "no user 'nobody'" in nobody.output


def test_the_help_says_how_properties_are_given(settings):
    create_help = ivr(settings, "user", "create", "--help").output
    assert "--property CODE" in create_help and "the whole company" in create_help
    group_help = ivr(settings, "user", "--help").output
    assert "properties" in group_help
    properties_help = ivr(settings, "user", "properties", "--help").output
    assert "--company-wide" in properties_help and "[CODE]..." in properties_help


# The API ---------------------------------------------------------------------------------------------------


def test_tokens_made_for_a_property_account_see_its_calls_and_service_tokens_all(
    phone, client, settings, database, properties
):
    """Calls to each property's number make its tickets; the API names their property and filters by it."""
    east_call = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "1"], to=EAST_LINE).raise_for_errors()
    west_call = phone.call(["1", "5*1*1102#", "1", Message(HELLO_WAV), "1"], to=WEST_LINE).raise_for_errors()
    east_ticket, west_ticket = ticket_for(database, east_call.call_sid), ticket_for(database, west_call.call_sid)
    assert east_ticket is not None and west_ticket is not None
    ivr(settings, "user", "create", "e-wang", "--role", "night_shift", "--property", "east", "--password", PASSWORD)
    scoped = last_line(ivr(settings, "token", "create", "e-wang-tool", "--user", "e-wang").output)
    service = last_line(ivr(settings, "token", "create", "archive", "--service").output)

    def tickets(token: str, query: str = "") -> list[tuple[str, str]]:
        response = client.get(f"/api/tickets{query}", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.json
        return [(t["number"], t["property"]) for t in response.json["tickets"]]

    assert tickets(scoped) == [(east_ticket.number, "east")]
    assert tickets(scoped, "?property=west") == []
    assert tickets(scoped, "?property=east&room=3-2-501") == [(east_ticket.number, "east")]
    detail = client.get(f"/api/tickets/{east_ticket.id}", headers={"Authorization": f"Bearer {scoped}"})
    assert detail.json["property"] == "east"
    hidden = client.get(f"/api/tickets/{west_ticket.id}", headers={"Authorization": f"Bearer {scoped}"})
    assert hidden.status_code == 404 and hidden.json["error"] == f"no ticket {west_ticket.id}"

    assert tickets(service) == [(west_ticket.number, "west"), (east_ticket.number, "east")]
    assert tickets(service, "?property=WEST") == [(west_ticket.number, "west")]
    unknown = client.get("/api/tickets?property=north", headers={"Authorization": f"Bearer {service}"})
    assert unknown.status_code == 400
    assert unknown.json["error"] == "property must be a property's code (`ivr property list`); there is no 'north'"

    # The account's properties change: its token follows at its next request.
    ivr(settings, "user", "properties", "e-wang", "west")
    assert tickets(scoped) == [(west_ticket.number, "west")]


def test_tickets_of_an_install_with_one_property_are_the_default_one(client, database):
    with database.session() as session:
        token = create_token(session, "wang-token", create_user(session, "wang", PASSWORD, "night_shift"))
    create_ticket(database)
    [ticket] = client.get("/api/tickets", headers={"Authorization": f"Bearer {token}"}).json["tickets"]
    assert ticket["property"] == "default"


# The console -----------------------------------------------------------------------------------------------


def staff(database, username: str, role: str, *codes: str, department: str | None = None) -> None:
    with database.session() as session:
        create_user(session, username, PASSWORD, role, department=department, property_codes=codes)


def selector_options(page: str) -> list[str]:
    """The header selector's options (value=label), or [] when the page has none."""
    match = re.search(r'<select name="property" aria-label="小区">(.*?)</select>', page)
    if match is None:
        return []
    return [f"{value}={label}" for value, label in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)<', match[1])]


def test_the_header_offers_the_properties_to_accounts_that_see_several(app, database, properties):
    staff(database, "hq", "manager")
    staff(database, "e-wang", "night_shift", "east")
    staff(database, "ew-boss", "manager", "east", "west")
    company = app.test_client()
    login(company, "hq")
    page = company.get("/console/dashboard?property=west").get_data(as_text=True)
    assert selector_options(page) == ["=全部小区", "default=幸福家园", "east=东方花园", "west=西城花园"]
    assert '<option value="west" selected>' in page
    assert 'action="/console/dashboard"' in page
    on_a_ticket_page = company.get(f"/console/tickets/{create_ticket(database)}").get_data(as_text=True)
    assert 'action="/console/"' in on_a_ticket_page  # a ticket is one property's: choosing one goes to the queue

    one = app.test_client()
    login(one, "e-wang")
    assert selector_options(one.get("/console/").get_data(as_text=True)) == []

    two = app.test_client()
    login(two, "ew-boss")
    page = two.get("/console/?property=default&status=open").get_data(as_text=True)
    assert selector_options(page)[1:] == ["east=东方花园", "west=西城花园", "default=default(无此小区或无权查看)"]
    assert '<input type="hidden" name="status" value="open">' in page


def test_the_header_names_the_desk_of_the_accounts_property_or_the_one_chosen(app, database, properties):
    staff(database, "hq", "manager")
    staff(database, "e-wang", "night_shift", "east")

    def desk(client, path: str) -> str:
        return re.search(r"<strong>(.*?)物业 · 24小时值班台</strong>", client.get(path).get_data(as_text=True))[1]

    one = app.test_client()
    login(one, "e-wang")
    assert desk(one, "/console/") == "东方花园"  # not IVR_PROPERTY_NAME's 幸福家园: east is all they work
    company = app.test_client()
    login(company, "hq")
    assert desk(company, "/console/") == "幸福家园"
    assert desk(company, "/console/?property=west") == "西城花园"
    assert desk(company, f"/console/tickets/{create_ticket(database)}?property=west") == "幸福家园"  # not filtered


def test_console_scopes_narrow_to_the_requested_property_within_the_account(app, database, properties):
    staff(database, "hq", "manager")
    staff(database, "e-gong", "department", "east", department="工程部")
    east, west = properties["east"], properties["west"]

    def scopes(username: str, query: str):
        with app.app_context():
            session = app.extensions["ivr.database"].sessionmaker()
            user = session.scalars(select(User).where(User.username == username)).one()
            staff_user = StaffUser(user)
            session.close()
        with app.test_request_context(f"/console/{query}"):
            login_user(staff_user)
            ticket, evaluation = console_ticket_scope(), console_evaluation_scope()
            return ticket.departments, ticket.properties, evaluation.properties

    assert scopes("hq", "") == (None, None, None)
    assert scopes("hq", "?property=west") == (None, {west}, {west})
    assert scopes("hq", "?property=north") == (None, frozenset(), frozenset())
    assert scopes("e-gong", "") == ({"工程部"}, {east}, {east})
    assert scopes("e-gong", "?property=east") == ({"工程部"}, {east}, {east})
    assert scopes("e-gong", "?property=west") == ({"工程部"}, frozenset(), frozenset())


def test_a_company_account_sees_one_property_in_the_queue_and_overview_when_it_asks(app, database, properties):
    staff(database, "hq", "manager")
    east = create_ticket(database, property_id=properties["east"], room="1-1-101")
    west = create_ticket(database, property_id=properties["west"], room="9-9-909")
    company = app.test_client()
    login(company, "hq")
    everything = company.get("/console/").get_data(as_text=True)
    assert "1-1-101" in everything and "9-9-909" in everything
    queue = company.get("/console/?property=west").get_data(as_text=True)
    assert "9-9-909" in queue and "1-1-101" not in queue
    overview = company.get("/console/dashboard?property=west").get_data(as_text=True)
    assert '<span class="big">1</span>未关闭工单' in overview
    assert '<span class="big">0</span>未关闭工单' in company.get("/console/dashboard?property=north").get_data(
        as_text=True
    )
    assert east != west


def test_the_accounts_page_shows_and_sets_each_accounts_properties(app, database, properties):
    staff(database, "root", "admin")
    staff(database, "e-wang", "night_shift", "east")
    admin = app.test_client()
    login(admin, "root")
    page = admin.get("/console/users").get_data(as_text=True)
    rows = dict(re.findall(r"<tr><td>([^<]+)</td>.*?<td class=\"properties\">([^<]*)</td>", page, re.S))
    assert rows == {"e-wang": "东方花园", "root": "全公司"}
    with database.session(read_only=True) as session:
        wang = session.scalars(select(User).where(User.username == "e-wang")).one().id
    csrf = csrf_from(admin, "/console/users")
    admin.post(
        f"/console/users/{wang}", data={"csrf_token": csrf, "action": "properties", "property": ["east", "west"]}
    )
    assert properties_of(database, "e-wang") == ["east", "west"]
    assert "e-wang 的所属小区已改为:东方花园、西城花园" in admin.get("/console/users").get_data(as_text=True)
    admin.post(
        "/console/users",
        data={
            "csrf_token": csrf,
            "username": "w-zhang",
            "password": "long-enough-pw",
            "role": "qa",
            "property": "west",
        },
    )
    assert properties_of(database, "w-zhang") == ["west"]
    admin.post(f"/console/users/{wang}", data={"csrf_token": csrf, "action": "properties"})
    assert properties_of(database, "e-wang") == []  # nothing ticked: the whole company


def test_a_property_account_logged_in_follows_a_change_of_its_properties(app, database, properties):
    staff(database, "e-wang", "night_shift", "east")
    west = create_ticket(database, property_id=properties["west"])
    night = app.test_client()
    login(night, "e-wang")
    assert night.get(f"/console/tickets/{west}").status_code == 404
    with database.session() as session:
        set_properties(session, session.scalars(select(User).where(User.username == "e-wang")).one(), ["west"])
    assert night.get(f"/console/tickets/{west}").status_code == 200


# Notices, their SMS, and the company's own pages -------------------------------------------------------------


def flag(database, property_id: int, reason: str) -> int:
    from ivr.models import Ticket
    from ivr.tickets.procedure import flag_for_manager

    ticket_id = create_ticket(database, property_id=property_id)
    with database.session() as session:
        flag_for_manager(session, session.get(Ticket, ticket_id), "wang", reason)
    return ticket_id


def test_a_manager_is_shown_and_texted_only_their_properties_notices(app, database, properties):
    from ivr.models import Notice
    from ivr.notifications import _phones_left

    with database.session() as session:
        create_user(session, "e-boss", PASSWORD, "manager", phone="+8613900000001", property_codes=("east",))
        create_user(session, "hq", PASSWORD, "manager", phone="+8613900000002")
    flag(database, properties["east"], "东方花园的重大投诉")
    flag(database, properties["west"], "西城花园的重大投诉")

    east_boss = app.test_client()
    login(east_boss, "e-boss")
    page = east_boss.get("/console/").get_data(as_text=True)
    assert "东方花园的重大投诉" in page and "西城花园的重大投诉" not in page
    company = app.test_client()
    login(company, "hq")
    page = company.get("/console/").get_data(as_text=True)
    assert "东方花园的重大投诉" in page and "西城花园的重大投诉" in page

    with database.session(read_only=True) as session:
        texts = {n.message.split(":", 1)[1]: _phones_left(session, n) for n in session.scalars(select(Notice))}
    assert texts == {
        "东方花园的重大投诉": ["+8613900000001", "+8613900000002"],
        "西城花园的重大投诉": ["+8613900000002"],
    }


def test_accounts_and_the_audit_are_for_company_admins_only(app, database, properties):
    staff(database, "e-root", "admin", "east")
    staff(database, "hq-root", "admin")
    scoped = app.test_client()
    login(scoped, "e-root")
    menu = scoped.get("/console/").get_data(as_text=True)
    assert "住户登记" in menu and ">账号<" not in menu and ">审计<" not in menu
    assert scoped.get("/console/audit").status_code == 403
    assert scoped.get("/console/users").status_code == 403
    company = app.test_client()
    login(company, "hq-root")
    menu = company.get("/console/").get_data(as_text=True)
    assert ">账号<" in menu and ">审计<" in menu
    assert company.get("/console/audit").status_code == 200
