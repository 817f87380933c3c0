"""One table of route × role for the console and the API (the access policy in ivr/access.py), checked through
the front door: the console with a logged-in session per role, the API with a token made for that role's
account (and a service token). Each row is a route and what every role gets from it."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr.access import Role
from ivr.models import (
    DEFAULT_PROPERTY_ID,
    Notice,
    Recording,
    RecordingState,
    Resident,
    Ticket,
    TicketStatus,
    Transcript,
)
from ivr.staff import create_token, create_user
from tests.factories import DUAL_WAV, HELLO_WAV, PASSWORD, create_ticket, login
from tests.web.test_qa_console import LI_NUMBER, WANG_NUMBER, create_evaluated_call

# Who asks. "anonymous": no log-in / no token; "service": a service token (API only). The night-shift member
# is wang, who answered the transfer {own_call} (scored) and not {others_call} (lina's); the department is
# 工程部, which has {ticket} and not {other_ticket} (秩序维护部).
WHO = ("anonymous", "night_shift", "qa", "department", "manager", "admin", "service")
USERNAMES = {"night_shift": "wang", "qa": "zhang", "department": "gong", "manager": "boss", "admin": "root"}
NA = None  # the route is not on this surface for this kind of principal


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    expected: tuple[int | None, ...]  # in the order of WHO
    body: dict[str, str] | None = None  # a console form (CSRF added) or the API's JSON

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")


def console(method: str, path: str, *expected: int, **form: str) -> Route:
    assert len(expected) == 6, path
    return Route(method, "/console" + path, (*expected, NA), form or None)


def api(method: str, path: str, *expected: int, **body: str) -> Route:
    assert len(expected) == 7, path
    return Route(method, "/api" + path, expected, body or None)


TEXT = {"text": "楼上漏水,已渗到客厅"}
# 302 for the console's POSTs means the action was taken (or refused with a message, e.g. a step out of
# order): the access check let it through. The anonymous column of the console is the log-in redirect.
ROUTES = [
    #                                                    anon night   qa  dept   mgr admin
    console("GET", "/", 302, 200, 200, 200, 200, 200),
    console("GET", "/dashboard", 302, 200, 200, 200, 200, 200),
    console("GET", "/tickets/{ticket}", 302, 200, 200, 200, 200, 200),
    console("GET", "/tickets/{other_ticket}", 302, 200, 200, 404, 200, 200),
    console(
        "POST", "/tickets/{ticket}/steps/dispatch", 302, 302, 403, 403, 302, 302, department="工程部", handler="李工"
    ),
    console("POST", "/tickets/{ticket}/steps/start", 302, 302, 403, 302, 302, 302),
    console("POST", "/tickets/{other_ticket}/steps/start", 302, 302, 403, 404, 302, 302),
    console("POST", "/tickets/{ticket}/transcript", 302, 302, 403, 302, 302, 302, **TEXT),
    console("POST", "/tickets/{other_ticket}/transcript", 302, 302, 403, 404, 302, 302, **TEXT),
    console("POST", "/tickets/{ticket}/caller", 302, 302, 403, 302, 302, 302, caller_name="张先生"),
    console("POST", "/tickets/{ticket}/notes", 302, 302, 403, 302, 302, 302, text="已联系业主"),
    console("POST", "/tickets/{ticket}/flag", 302, 302, 403, 302, 302, 302, reason="多户联名"),
    console("POST", "/tickets/{ticket}/call-back", 302, 302, 403, 403, 302, 302, reason="住户要求回电"),
    console("POST", "/tickets/{other_ticket}/call-back", 302, 302, 403, 404, 302, 302, reason="住户要求回电"),
    console("POST", "/notices/{manager_notice}/read", 302, 404, 404, 404, 302, 404),
    console("GET", "/recordings/{message}/audio", 302, 200, 200, 200, 200, 200),
    console("GET", "/recordings/{other_message}/audio", 302, 200, 200, 404, 200, 200),
    console("GET", "/recordings/{own_transfer}/audio", 302, 200, 200, 404, 200, 200),
    console("GET", "/recordings/{others_transfer}/audio", 302, 404, 200, 404, 200, 200),
    console("GET", "/qa", 302, 403, 200, 403, 200, 200),
    console("GET", "/qa/mine", 302, 200, 200, 403, 200, 200),
    console("GET", "/qa/calls/{own_call}", 302, 200, 200, 403, 200, 200),
    console("GET", "/qa/calls/{others_call}", 302, 403, 200, 403, 200, 200),
    console("GET", "/qa/calls/CA-no-such-call", 302, 403, 404, 403, 404, 404),
    console("POST", "/qa/calls/{own_call}/review", 302, 403, 302, 403, 302, 302),
    console("POST", "/qa/calls/{own_call}/transcripts/1", 302, 403, 302, 403, 302, 302, **TEXT),
    console("POST", "/qa/calls/{own_call}/respond", 302, 302, 403, 403, 403, 403, action="accept"),
    console("GET", "/qa/reports", 302, 403, 200, 403, 200, 200),
    console("GET", "/qa/reports.csv", 302, 403, 200, 403, 200, 200),
    console("GET", "/users", 302, 403, 403, 403, 403, 200),
    console("POST", "/users", 302, 403, 403, 403, 403, 302, username="newbie", password="long-enough-pw", role="qa"),
    console("POST", "/users/{lina}", 302, 403, 403, 403, 403, 302, action="toggle"),
    console("GET", "/audit", 302, 403, 403, 403, 403, 200),
    console("GET", "/residents", 302, 403, 403, 403, 403, 200),
    console(
        "POST", "/residents", 302, 403, 403, 403, 403, 302, property="default", room="3-2-501", phone="13912345678"
    ),
    console("POST", "/residents/{resident}", 302, 403, 403, 403, 403, 302, action="rename", name="张伟"),
    console("GET", "/follow-ups", 302, 200, 403, 403, 200, 200),
    console("GET", "/follow-ups/report.csv", 302, 200, 403, 403, 200, 200),
    console("GET", "/follow-ups/report", 302, 200, 403, 403, 200, 200),
    #                                                    anon night   qa  dept   mgr admin service
    api("GET", "/tickets", 401, 200, 200, 200, 200, 200, 200),
    api("GET", "/tickets/{ticket}", 401, 200, 200, 200, 200, 200, 200),
    api("GET", "/tickets/{other_ticket}", 401, 200, 200, 404, 200, 200, 200),
    api("GET", "/recordings/{message}/audio", 401, 200, 200, 200, 200, 200, 200),
    api("GET", "/recordings/{other_message}/audio", 401, 200, 200, 404, 200, 200, 200),
    api("GET", "/recordings/{own_transfer}/audio", 401, 200, 200, 404, 200, 200, 200),
    api("GET", "/recordings/{others_transfer}/audio", 401, 404, 200, 404, 200, 200, 200),
    api("GET", "/calls/{own_call}/evaluation", 401, 200, 200, 403, 200, 200, 403),
    api("GET", "/calls/{others_call}/evaluation", 401, 403, 200, 403, 200, 200, 403),
    api("GET", "/calls/CA-no-such-call/evaluation", 401, 403, 404, 403, 404, 404, 403),
    api("PUT", "/recordings/{message}/transcripts/0", 401, 200, 403, 200, 200, 200, 403, **TEXT),
    api("PUT", "/recordings/{other_message}/transcripts/0", 401, 200, 403, 404, 200, 200, 403, **TEXT),
    api("PUT", "/recordings/{own_transfer}/transcripts/1", 401, 403, 200, 404, 200, 200, 403, **TEXT),
    api("PUT", "/recordings/{others_transfer}/transcripts/1", 401, 404, 200, 404, 200, 200, 403, **TEXT),
]

# The same permission on both surfaces: these pairs must let exactly the same roles through.
SAME_ON_BOTH = [
    ("/console/tickets/{ticket}", "/api/tickets/{ticket}"),
    ("/console/tickets/{other_ticket}", "/api/tickets/{other_ticket}"),
    ("/console/recordings/{message}/audio", "/api/recordings/{message}/audio"),
    ("/console/recordings/{other_message}/audio", "/api/recordings/{other_message}/audio"),
    ("/console/recordings/{own_transfer}/audio", "/api/recordings/{own_transfer}/audio"),
    ("/console/recordings/{others_transfer}/audio", "/api/recordings/{others_transfer}/audio"),
    ("/console/qa/calls/{own_call}", "/api/calls/{own_call}/evaluation"),
    ("/console/qa/calls/{others_call}", "/api/calls/{others_call}/evaluation"),
    ("/console/qa/calls/CA-no-such-call", "/api/calls/CA-no-such-call/evaluation"),
    ("/console/tickets/{ticket}/transcript", "/api/recordings/{message}/transcripts/0"),
    ("/console/tickets/{other_ticket}/transcript", "/api/recordings/{other_message}/transcripts/0"),
    ("/console/qa/calls/{own_call}/transcripts/1", "/api/recordings/{own_transfer}/transcripts/1"),
]


def store(settings, name: str, wav: Path) -> str:
    target = settings.recordings_dir / "test" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(wav.read_bytes())
    return f"test/{name}"


def message_on(database, settings, ticket_id: int, sid: str) -> None:
    """A stored, transcribed message take on the ticket."""
    path = store(settings, f"{sid}.wav", HELLO_WAV)
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        recording = Recording(
            recording_sid=sid,
            call_id=ticket.call_id,
            ticket=ticket,
            source="message",
            state=RecordingState.STORED,
            path=path,
            channels=1,
        )
        session.add(recording)
        session.add(Transcript(recording=recording, channel=0, text="楼上漏税", raw_text="楼上 漏税", words=[]))


def transfer_recording_sid(database, settings, call_sid: str) -> str:
    """The evaluated call's dual-channel recording, stored."""
    from sqlalchemy import select

    from ivr.models import Call

    with database.session() as session:
        recording = session.scalars(select(Recording).join(Recording.call).where(Call.call_sid == call_sid)).one()
        recording.path = store(settings, f"{recording.recording_sid}.wav", DUAL_WAV)
        return recording.recording_sid


@pytest.fixture
def world(database, settings) -> dict[str, object]:
    return build_world(database, settings)


def build_world(database, settings) -> dict[str, object]:
    """Five staff accounts (one per role) and lina (another night-shift member), with API tokens; a
    工程部 ticket and a 秩序维护部 ticket with a message each; wang's and lina's scored transfers; a
    notice for managers. Returns the values the route paths name, and the tokens by role."""
    with database.session() as session:
        users = {
            "night_shift": create_user(
                session, "wang", PASSWORD, "night_shift", display_name="王芳", phone=WANG_NUMBER
            ),
            "qa": create_user(session, "zhang", PASSWORD, "qa"),
            "department": create_user(session, "gong", PASSWORD, "department", department="工程部"),
            "manager": create_user(session, "boss", PASSWORD, "manager"),
            "admin": create_user(session, "root", PASSWORD, "admin"),
        }
        lina = create_user(session, "lina", PASSWORD, "night_shift", display_name="李娜", phone=LI_NUMBER)
        tokens: dict[str, str] = {
            role: create_token(session, f"{user.username}-token", user) for role, user in users.items()
        }
        tokens["service"] = create_token(session, "archive", service=True)
        lina_id = lina.id
    ticket = create_ticket(database, department="工程部", handler="李工", status=TicketStatus.DISPATCHED)
    other_ticket = create_ticket(
        database, room="5-1-1102", department="秩序维护部", handler="赵队", status=TicketStatus.DISPATCHED
    )
    message_on(database, settings, ticket, "RE" + "a" * 32)
    message_on(database, settings, other_ticket, "RE" + "b" * 32)
    own_call = create_evaluated_call(database, agent_number=WANG_NUMBER)
    others_call = create_evaluated_call(database, agent_number=LI_NUMBER)
    with database.session() as session:
        notice = Notice(role="manager", message="重大投诉", ticket_id=ticket)
        session.add(notice)
        session.flush()
        notice_id = notice.id
        resident = Resident(property_id=DEFAULT_PROPERTY_ID, room="3-2-501", phone="+8613912345678")
        session.add(resident)
        session.flush()
        resident_id = resident.id
    return {
        "ticket": ticket,
        "other_ticket": other_ticket,
        "message": "RE" + "a" * 32,
        "other_message": "RE" + "b" * 32,
        "own_call": own_call,
        "others_call": others_call,
        "own_transfer": transfer_recording_sid(database, settings, own_call),
        "others_transfer": transfer_recording_sid(database, settings, others_call),
        "manager_notice": notice_id,
        "lina": lina_id,
        "resident": resident_id,
        "tokens": tokens,
    }


def csrf_token(client) -> str:
    """The session's CSRF token, from a page every visitor gets (the queue, or the log-in page)."""
    page = client.get("/console/", follow_redirects=True).get_data(as_text=True)
    match = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def status_of(client, route: Route, values: dict[str, object], token: str | None, csrf: str) -> int:
    path = route.path.format(**values)
    if route.api:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = client.open(path, method=route.method, headers=headers, json=route.body)
    elif route.method == "GET":
        response = client.get(path)
    else:
        response = client.open(path, method=route.method, data={"csrf_token": csrf, **(route.body or {})})
    response.close()
    return response.status_code


@pytest.mark.parametrize("who", WHO)
def test_every_route_answers_each_role_as_the_table_says(app, world, who):
    console_client, api_client = app.test_client(), app.test_client()
    if who in USERNAMES:
        assert login(console_client, USERNAMES[who]).status_code == 302
    csrf = csrf_token(console_client)
    tokens = world["tokens"]
    assert isinstance(tokens, dict)
    column = WHO.index(who)
    expected, got = {}, {}
    for route in ROUTES:
        if route.expected[column] is NA:
            continue
        name = f"{route.method} {route.path}"
        expected[name] = route.expected[column]
        got[name] = status_of(api_client if route.api else console_client, route, world, tokens.get(who), csrf)
    assert got == expected


def test_the_console_and_the_api_let_the_same_roles_through():
    """Where both surfaces offer the same thing, the table lets the same staff roles do it."""
    by_path = {route.path: route for route in ROUTES}
    staff = [WHO.index(role.value) for role in Role]

    def allowed(route: Route) -> set[str]:
        return {WHO[i] for i in staff if route.expected[i] in (200, 206, 302)}

    for console_path, api_path in SAME_ON_BOTH:
        assert allowed(by_path[console_path]) == allowed(by_path[api_path]), (console_path, api_path)


def test_the_table_covers_every_console_and_api_route(app):
    """A new route needs its row: every view of the console and the API is in the table (log-in, log-out
    and static files are tested in tests/web)."""
    adapter = app.url_map.bind("ivr.example.test")
    sample = defaultdict(lambda: "1")
    covered = {adapter.match(route.path.format_map(sample), method=route.method)[0] for route in ROUTES}
    untabled = {"auth.login", "auth.logout", "console.static"}
    views = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith(("console.", "api."))}
    assert views - untabled - covered == set()


def test_a_reviewer_never_reviews_or_corrects_their_own_scored_call(app, database, settings):
    """A manager who answered a transfer reads and answers their evaluation like anyone scored, and cannot
    review it or rewrite the transcript it is scored on."""
    with database.session() as session:
        boss = create_user(session, "boss", PASSWORD, "manager", display_name="赵经理", phone="+8613800000009")
        token = create_token(session, "boss-token", boss)
    call_sid = create_evaluated_call(database, agent_number="+8613800000009")
    sid = transfer_recording_sid(database, settings, call_sid)
    console, api_client = app.test_client(), app.test_client()
    login(console, "boss")
    page = console.get(f"/console/qa/calls/{call_sid}").get_data(as_text=True)
    assert "我的回应" in page and "保存复核" not in page and "保存并重新评分" not in page
    csrf = csrf_token(console)
    path = f"/console/qa/calls/{call_sid}"
    assert console.post(f"{path}/review", data={"csrf_token": csrf}).status_code == 403
    assert console.post(f"{path}/transcripts/1", data={"csrf_token": csrf, **TEXT}).status_code == 403
    assert console.post(f"{path}/respond", data={"csrf_token": csrf, "action": "accept"}).status_code == 302
    headers = {"Authorization": f"Bearer {token}"}
    assert api_client.put(f"/api/recordings/{sid}/transcripts/1", json=TEXT, headers=headers).status_code == 403
    assert api_client.get(f"/api/calls/{call_sid}/evaluation", headers=headers).status_code == 200


# Properties ------------------------------------------------------------------------------------------------
#
# Two properties, east (东方花园) and west (西城花园). Staff of east only, one per role (the night-shift
# member answered a transfer in each: east's and, before moving to east, west's), a company-wide admin, and
# a service token. Each has a ticket of 工程部 with a message, a scored transfer and a notice for managers.
# Nothing of west is shown to east's staff: 404 where a reviewer or a ticket's reader would get a 404 for
# something that does not exist, 403 where everyone not entitled gets a 403 (an evaluation that is not theirs).

PROPERTY_WHO = ("night_east", "qa_east", "department_east", "manager_east", "admin_east", "company", "service")
PROPERTY_USERNAMES = {
    "night_east": "e-wang",
    "qa_east": "e-zhang",
    "department_east": "e-gong",
    "manager_east": "e-boss",
    "admin_east": "e-root",
    "company": "hq",
}


def property_console(method: str, path: str, *expected: int, **form: str) -> Route:
    assert len(expected) == 6, path
    return Route(method, "/console" + path, (*expected, NA), form or None)


def property_api(method: str, path: str, *expected: int, **body: str) -> Route:
    assert len(expected) == 7, path
    return Route(method, "/api" + path, expected, body or None)


PROPERTY_ROUTES = [
    #                                                               night   qa  dept   mgr admin company
    property_console("GET", "/tickets/{east_ticket}", 200, 200, 200, 200, 200, 200),
    property_console("GET", "/tickets/{west_ticket}", 404, 404, 404, 404, 404, 200),
    property_console("POST", "/tickets/{west_ticket}/steps/start", 404, 404, 404, 404, 404, 302),
    property_console("POST", "/tickets/{west_ticket}/transcript", 404, 404, 404, 404, 404, 302, **TEXT),
    property_console("POST", "/tickets/{west_ticket}/notes", 404, 404, 404, 404, 404, 302, text="已联系业主"),
    property_console("POST", "/tickets/{west_ticket}/call-back", 404, 404, 404, 404, 404, 302, reason="住户要求回电"),
    property_console("GET", "/recordings/{east_message}/audio", 200, 200, 200, 200, 200, 200),
    property_console("GET", "/recordings/{west_message}/audio", 404, 404, 404, 404, 404, 200),
    property_console("GET", "/recordings/{east_transfer}/audio", 200, 200, 404, 200, 200, 200),
    property_console("GET", "/recordings/{west_transfer}/audio", 404, 404, 404, 404, 404, 200),
    property_console("GET", "/qa/calls/{east_call}", 200, 200, 403, 200, 200, 200),
    property_console("GET", "/qa/calls/{west_call}", 403, 404, 403, 404, 404, 200),
    property_console("POST", "/qa/calls/{west_call}/review", 403, 404, 403, 404, 404, 302),
    property_console("POST", "/qa/calls/{west_call}/transcripts/1", 403, 404, 403, 404, 404, 302, **TEXT),
    property_console("POST", "/qa/calls/{west_call}/respond", 403, 404, 403, 404, 404, 403, action="accept"),
    property_console("POST", "/qa/calls/{east_call}/respond", 302, 403, 403, 403, 403, 403, action="accept"),
    property_console("POST", "/notices/{east_notice}/read", 404, 404, 404, 302, 404, 404),
    property_console("POST", "/notices/{west_notice}/read", 404, 404, 404, 404, 404, 404),
    # Accounts are managed company-wide: an admin of some properties could give themselves the others.
    property_console("GET", "/users", 403, 403, 403, 403, 403, 200),
    property_console("POST", "/users/{east_admin}", 403, 403, 403, 403, 403, 302, action="properties", property="east"),
    #                                                               night   qa  dept   mgr admin company service
    property_api("GET", "/tickets/{east_ticket}", 200, 200, 200, 200, 200, 200, 200),
    property_api("GET", "/tickets/{west_ticket}", 404, 404, 404, 404, 404, 200, 200),
    property_api("GET", "/recordings/{east_message}/audio", 200, 200, 200, 200, 200, 200, 200),
    property_api("GET", "/recordings/{west_message}/audio", 404, 404, 404, 404, 404, 200, 200),
    property_api("GET", "/recordings/{east_transfer}/audio", 200, 200, 404, 200, 200, 200, 200),
    property_api("GET", "/recordings/{west_transfer}/audio", 404, 404, 404, 404, 404, 200, 200),
    property_api("GET", "/calls/{east_call}/evaluation", 200, 200, 403, 200, 200, 200, 403),
    property_api("GET", "/calls/{west_call}/evaluation", 403, 404, 403, 404, 404, 200, 403),
    property_api("PUT", "/recordings/{west_message}/transcripts/0", 404, 404, 404, 404, 404, 200, 403, **TEXT),
    property_api("PUT", "/recordings/{west_transfer}/transcripts/1", 404, 404, 404, 404, 404, 200, 403, **TEXT),
]

EAST_NIGHT_NUMBER = WANG_NUMBER


def add_properties(app, database) -> dict[str, int]:
    """east (东方花园) and west (西城花园), with the app's property directory told at once."""
    from ivr.properties import property_directory, save_property

    with database.session() as session:
        ids = {
            code: save_property(session, code, name=name, numbers=(number,)).id
            for code, name, number in (("east", "东方花园", "+862160000001"), ("west", "西城花园", "+862160000002"))
        }
    with app.extensions["ivr.database"].session() as session:
        property_directory(session).reload()
    return ids


def move_call(database, call_sid: str, property_id: int) -> None:
    """The call, and its ticket and evaluation if any, in that property (as if its number had been dialled)."""
    from sqlalchemy import select

    from ivr.models import Call, Evaluation

    with database.session() as session:
        call = session.scalars(select(Call).where(Call.call_sid == call_sid)).one()
        call.property_id = property_id
        if call.ticket is not None:
            call.ticket.property_id = property_id
        for evaluation in session.scalars(select(Evaluation).where(Evaluation.call_id == call.id)):
            evaluation.property_id = property_id


def property_ticket(database, settings, property_id: int, sid: str) -> int:
    """A dispatched 工程部 ticket of the property, with a stored message take."""
    from ivr.models import Ticket as TicketRow

    ticket = create_ticket(
        database, department="工程部", handler="李工", status=TicketStatus.DISPATCHED, property_id=property_id
    )
    with database.session() as session:
        row = session.get(TicketRow, ticket)
        row.call.property_id = property_id
    message_on(database, settings, ticket, sid)
    return ticket


@pytest.fixture
def property_world(app, database, settings) -> dict[str, object]:
    return build_property_world(app, database, settings)


def build_property_world(app, database, settings) -> dict[str, object]:
    """The accounts of PROPERTY_WHO with a token each (and a service token); per property a ticket with a
    message, a transfer east's night-shift member answered (scored) and a notice for managers."""
    ids = add_properties(app, database)
    east = ("east",)
    with database.session() as session:
        users = {
            "night_east": create_user(
                session, "e-wang", PASSWORD, "night_shift", phone=EAST_NIGHT_NUMBER, property_codes=east
            ),
            "qa_east": create_user(session, "e-zhang", PASSWORD, "qa", property_codes=east),
            "department_east": create_user(
                session, "e-gong", PASSWORD, "department", department="工程部", property_codes=east
            ),
            "manager_east": create_user(session, "e-boss", PASSWORD, "manager", property_codes=east),
            "admin_east": create_user(session, "e-root", PASSWORD, "admin", property_codes=east),
            "company": create_user(session, "hq", PASSWORD, "admin"),
        }
        tokens: dict[str, str] = {
            who: create_token(session, f"{user.username}-token", user) for who, user in users.items()
        }
        tokens["service"] = create_token(session, "archive", service=True)
        east_admin = users["admin_east"].id
    values: dict[str, object] = {"tokens": tokens, "east_admin": east_admin, "property_ids": ids}
    for code, letter in (("east", "e"), ("west", "f")):
        sid = "RE" + letter * 32
        values[f"{code}_ticket"] = ticket = property_ticket(database, settings, ids[code], sid)
        values[f"{code}_message"] = sid
        call_sid = create_evaluated_call(database, agent_number=EAST_NIGHT_NUMBER)
        move_call(database, call_sid, ids[code])
        values[f"{code}_call"] = call_sid
        values[f"{code}_transfer"] = transfer_recording_sid(database, settings, call_sid)
        with database.session() as session:
            notice = Notice(role="manager", message="重大投诉", ticket_id=ticket)
            session.add(notice)
            session.flush()
            values[f"{code}_notice"] = notice.id
    return values


@pytest.mark.parametrize("who", PROPERTY_WHO)
def test_every_route_keeps_each_property_to_its_staff_as_the_table_says(app, property_world, who):
    console_client, api_client = app.test_client(), app.test_client()
    if who in PROPERTY_USERNAMES:
        assert login(console_client, PROPERTY_USERNAMES[who]).status_code == 302
    csrf = csrf_token(console_client)
    tokens = property_world["tokens"]
    assert isinstance(tokens, dict)
    column = PROPERTY_WHO.index(who)
    expected, got = {}, {}
    for route in PROPERTY_ROUTES:
        if route.expected[column] is NA:
            continue
        name = f"{route.method} {route.path}"
        expected[name] = route.expected[column]
        got[name] = status_of(api_client if route.api else console_client, route, property_world, tokens[who], csrf)
    assert got == expected


def test_the_property_table_lets_the_same_staff_through_on_both_surfaces():
    """Where the console and the API offer the same thing of a property, the same accounts get it."""
    by_path = {route.path: route for route in PROPERTY_ROUTES}
    staff = range(len(PROPERTY_USERNAMES))
    pairs = [
        ("/console/tickets/{west_ticket}", "/api/tickets/{west_ticket}"),
        ("/console/recordings/{west_message}/audio", "/api/recordings/{west_message}/audio"),
        ("/console/recordings/{east_transfer}/audio", "/api/recordings/{east_transfer}/audio"),
        ("/console/recordings/{west_transfer}/audio", "/api/recordings/{west_transfer}/audio"),
        ("/console/qa/calls/{east_call}", "/api/calls/{east_call}/evaluation"),
        ("/console/qa/calls/{west_call}", "/api/calls/{west_call}/evaluation"),
        ("/console/tickets/{west_ticket}/transcript", "/api/recordings/{west_message}/transcripts/0"),
        ("/console/qa/calls/{west_call}/transcripts/1", "/api/recordings/{west_transfer}/transcripts/1"),
    ]
    for console_path, api_path in pairs:
        console_route, api_route = by_path[console_path], by_path[api_path]
        assert [console_route.expected[i] in (200, 302) for i in staff] == [
            api_route.expected[i] in (200, 302) for i in staff
        ], (console_path, api_path)


def ticket_numbers(database, *ticket_ids: object) -> dict[str, object]:
    with database.session() as session:
        return {session.get(Ticket, ticket_id).number: ticket_id for ticket_id in ticket_ids}


@pytest.mark.parametrize("who", ["night_east", "qa_east", "department_east", "manager_east"])
def test_property_staff_list_only_their_property_on_both_surfaces(app, database, property_world, who):
    """The queue, the overview and the API's list show east's ticket to east's staff, never west's."""
    numbers = ticket_numbers(database, property_world["east_ticket"], property_world["west_ticket"])
    east_number, west_number = list(numbers)
    console_client = app.test_client()
    login(console_client, PROPERTY_USERNAMES[who])
    queue = console_client.get("/console/").get_data(as_text=True)
    assert east_number in queue and west_number not in queue
    tokens = property_world["tokens"]
    assert isinstance(tokens, dict)
    headers = {"Authorization": f"Bearer {tokens[who]}"}
    listed = app.test_client().get("/api/tickets", headers=headers).json["tickets"]
    assert [(t["number"], t["property"]) for t in listed] == [(east_number, "east")]
    asked_for_west = app.test_client().get("/api/tickets?property=west", headers=headers)
    assert asked_for_west.status_code == 200 and asked_for_west.json["tickets"] == []


def test_the_qa_list_and_reports_show_a_reviewer_only_their_property(app, property_world):
    console_client = app.test_client()
    login(console_client, "e-zhang")
    listed = console_client.get("/console/qa").get_data(as_text=True)
    assert property_world["east_call"] in listed and property_world["west_call"] not in listed
    asked_for_west = console_client.get("/console/qa?property=west").get_data(as_text=True)
    assert property_world["east_call"] not in asked_for_west and property_world["west_call"] not in asked_for_west
    report = console_client.get("/console/qa/reports.csv").get_data(as_text=True)
    assert "e-wang" in report and ",1," in report  # one evaluation: east's, not west's as well
    assert "e-wang" not in console_client.get("/console/qa/reports.csv?property=west").get_data(as_text=True)


def test_a_company_account_narrows_to_one_property_with_the_filter(app, property_world):
    console_client = app.test_client()
    login(console_client, "hq")
    both = console_client.get("/console/qa").get_data(as_text=True)
    assert property_world["east_call"] in both and property_world["west_call"] in both
    west = console_client.get("/console/qa?property=west").get_data(as_text=True)
    assert property_world["west_call"] in west and property_world["east_call"] not in west
    assert ",2," in console_client.get("/console/qa/reports.csv").get_data(as_text=True)
    assert ",1," in console_client.get("/console/qa/reports.csv?property=west").get_data(as_text=True)
    tokens = property_world["tokens"]
    assert isinstance(tokens, dict)
    for who in ("company", "service"):
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        everything = app.test_client().get("/api/tickets", headers=headers).json["tickets"]
        assert sorted(t["property"] for t in everything) == ["east", "west"]
        [west_ticket] = app.test_client().get("/api/tickets?property=west", headers=headers).json["tickets"]
        assert west_ticket["id"] == property_world["west_ticket"] and west_ticket["property"] == "west"
