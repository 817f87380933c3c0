"""The server-side audit (ivr/audit.py) through the front door: direct fetches of the audio URLs in the
console and the API, ticket messages and transfer recordings, several range requests counted as one listen,
API ticket reads, the admins' audit page and `ivr audit`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ivr.audit import ACTION_LABELS, LISTEN_WINDOW
from ivr.audit_cli import ACTIONS
from ivr.cli import main
from ivr.cli_state import CliState
from ivr.db import utcnow
from ivr.models import ApiToken, AuditEvent, User
from tests.factories import login
from tests.test_access_policy import build_world


@pytest.fixture
def world(database, settings) -> dict:
    return build_world(database, settings)


def audit_rows(database, **where) -> list[AuditEvent]:
    """Audit rows matching column=value, oldest first."""
    with database.session() as session:
        query = select(AuditEvent).order_by(AuditEvent.id)
        for column, value in where.items():
            query = query.where(getattr(AuditEvent, column) == value)
        return list(session.scalars(query))


def user_id(database, username: str) -> int:
    with database.session() as session:
        return session.scalars(select(User.id).where(User.username == username)).one()


def token_id(database, name: str) -> int:
    with database.session() as session:
        return session.scalars(select(ApiToken.id).where(ApiToken.name == name)).one()


def age_audit(database, by: timedelta) -> None:
    """Move every audit row into the past, as if `by` had gone by since."""
    with database.session() as session:
        for row in session.scalars(select(AuditEvent)):
            row.at -= by


def fetch(client, url: str, headers: dict[str, str] | None = None) -> int:
    with client.get(url, headers=headers or {}) as response:
        return response.status_code


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_direct_fetch_of_the_console_audio_url_is_one_listen_for_all_its_range_requests(app, world, database):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    login(client, "wang")
    sid, url = world["message"], f"/console/recordings/{world['message']}/audio"
    assert [
        fetch(client, url, h) for h in ({}, {"Range": "bytes=0-"}, {"Range": "bytes=44-"}, {"Range": "bytes=100-200"})
    ] == [200, 206, 206, 206]
    [listen] = audit_rows(database, action="listen")
    assert (
        listen.actor,
        listen.user_id,
        listen.token_id,
        listen.via,
        listen.recording_sid,
        listen.ticket_id,
        listen.remote_addr,
    ) == ("wang", user_id(database, "wang"), None, "console", sid, world["ticket"], "10.0.0.7")
    assert listen.detail == {"source": "message"}  # the first request had no Range

    other = app.test_client()
    login(other, "boss")
    assert fetch(other, url, {"Range": "bytes=0-"}) == 206  # someone else's listen is their own
    with client.head(url) as head:
        assert head.status_code == 200  # a HEAD sends no audio: not a listen
    age_audit(database, LISTEN_WINDOW + timedelta(seconds=1))
    # After the window the next request opens a new listen, whatever its range (bytes=1- does not dodge it).
    assert fetch(client, url, {"Range": "bytes=1-"}) == 206
    assert [(row.actor, row.detail.get("range")) for row in audit_rows(database, action="listen")] == [
        ("wang", None),
        ("boss", "bytes=0-"),
        ("wang", "bytes=1-"),
    ]


def test_an_api_fetch_is_a_listen_of_the_token_and_its_account(client, world, database):
    tokens = world["tokens"]
    url = f"/api/recordings/{world['message']}/audio"
    for headers in ({"Range": "bytes=0-43"}, {"Range": "bytes=44-"}, {}):
        assert fetch(client, url, {**bearer(tokens["night_shift"]), **headers}) in (200, 206)
    assert fetch(client, url, bearer(tokens["service"])) == 200
    listens = audit_rows(database, action="listen")
    assert [(row.actor, row.via, row.user_id, row.token_id, row.ticket_id, row.remote_addr) for row in listens] == [
        ("wang", "api", user_id(database, "wang"), token_id(database, "wang-token"), world["ticket"], "127.0.0.1"),
        ("token:archive", "api", None, token_id(database, "archive"), world["ticket"], "127.0.0.1"),
    ]
    assert listens[0].detail == {"source": "message", "range": "bytes=0-43"}


def test_transfer_recordings_on_the_qa_pages_are_audited(app, world, database):
    client = app.test_client()
    login(client, "zhang")
    page = client.get(f"/console/qa/calls/{world['own_call']}").get_data(as_text=True)
    [read] = audit_rows(database, action="read_evaluation")
    assert (read.actor, read.via, read.recording_sid, read.detail) == (
        "zhang",
        "console",
        world["own_transfer"],
        {"call_sid": world["own_call"]},
    )
    url = f"/console/recordings/{world['own_transfer']}/audio"
    assert f'src="{url}"' in page and not audit_rows(database, action="listen")  # the page itself sends no audio
    assert fetch(client, url, {"Range": "bytes=0-"}) == 206
    assert fetch(client, url, {"Range": "bytes=2000-"}) == 206
    [listen] = audit_rows(database, action="listen")
    assert (listen.actor, listen.recording_sid, listen.ticket_id, listen.detail) == (
        "zhang",
        world["own_transfer"],
        None,
        {"source": "dial", "range": "bytes=0-"},
    )

    api = app.test_client()
    assert (
        api.get(f"/api/calls/{world['own_call']}/evaluation", headers=bearer(world["tokens"]["qa"])).status_code == 200
    )
    assert [(row.actor, row.via) for row in audit_rows(database, action="read_evaluation")] == [
        ("zhang", "console"),
        ("zhang", "api"),
    ]


def test_api_ticket_reads_are_audited_and_shown_on_the_ticket_timeline(app, client, world, database):
    tokens = world["tokens"]
    listed = client.get("/api/tickets?status=dispatched", headers=bearer(tokens["night_shift"])).json["tickets"]
    assert [t["id"] for t in listed] == [world["other_ticket"], world["ticket"]]
    client.get("/api/tickets", headers=bearer(tokens["department"]))
    assert client.get(f"/api/tickets/{world['ticket']}", headers=bearer(tokens["night_shift"])).status_code == 200
    lists = audit_rows(database, action="list_tickets")
    assert [(row.actor, row.detail["ids"]) for row in lists] == [
        ("wang", [world["other_ticket"], world["ticket"]]),
        ("gong", [world["ticket"]]),
    ]
    assert lists[0].detail["query"] == {"status": "dispatched"} and lists[0].ticket_id is None
    [read] = audit_rows(database, action="read_ticket")
    assert (read.actor, read.via, read.ticket_id, read.token_id) == (
        "wang",
        "api",
        world["ticket"],
        token_id(database, "wang-token"),
    )

    console = app.test_client()
    login(console, "boss")
    timeline = console.get(f"/console/tickets/{world['ticket']}").get_data(as_text=True).split('class="timeline"')[1]
    assert "<strong>wang</strong> 查看工单(API)" in timeline


def test_a_department_cannot_fetch_another_departments_recording_and_nothing_is_audited(app, client, world, database):
    console = app.test_client()
    login(console, "gong")
    department_token = bearer(world["tokens"]["department"])
    for sid in (world["other_message"], world["own_transfer"]):
        assert fetch(console, f"/console/recordings/{sid}/audio") == 404
        assert fetch(client, f"/api/recordings/{sid}/audio", department_token) == 404
    assert audit_rows(database, action="listen") == []
    assert fetch(console, f"/console/recordings/{world['message']}/audio") == 200  # its own department's
    assert [row.recording_sid for row in audit_rows(database, action="listen")] == [world["message"]]


def listen_row(actor: str, sid: str, minutes_ago: int) -> AuditEvent:
    return AuditEvent(
        actor=actor,
        via="console",
        action="listen",
        recording_sid=sid,
        remote_addr="10.0.0.9",
        at=utcnow() - timedelta(minutes=minutes_ago),
        detail={"source": "message"},
    )


def test_the_audit_page_shows_admins_who_listened_newest_first_filtered_and_paged(app, world, database):
    with database.session() as session:
        session.add_all(
            [
                listen_row("wang", world["message"], 30),
                listen_row("boss", world["message"], 20),
                listen_row("wang", world["other_message"], 10),
            ]
        )
        session.add_all([listen_row("lina", world["other_message"], 100 + i) for i in range(55)])
    admin = app.test_client()
    login(admin, "root")

    def rows(query: str) -> list[tuple[str, str]]:
        page = admin.get(f"/console/audit{query}").get_data(as_text=True)
        body = page.split("<tbody>")[1].split("</tbody>")[0]
        return [
            (chunk.split('class="actor">')[1].split("<")[0], chunk.split('class="recording">')[1].split("<")[0])
            for chunk in body.split("<tr ")[1:]
        ]

    assert rows("?user=wang") == [("wang", world["other_message"]), ("wang", world["message"])]
    assert rows(f"?recording={world['message']}") == [("boss", world["message"]), ("wang", world["message"])]
    first = admin.get("/console/audit?user=lina").get_data(as_text=True)
    assert "共 55 条" in first and "第 1 / 2 页" in first and 'href="/console/audit?page=2&amp;user=lina"' in first
    assert len(rows("?user=lina")) == 50 and len(rows("?user=lina&page=2")) == 5
    assert "10.0.0.9" in first and "收听录音" in first


def ivr(settings, *args: str):
    return CliRunner().invoke(main, ["audit", *args], obj=CliState(settings))


def test_ivr_audit_lists_who_listened_to_what_when_and_from_where(app, world, database, settings):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    login(client, "wang")
    fetch(client, f"/console/recordings/{world['message']}/audio", {"Range": "bytes=0-"})
    fetch(client, f"/console/recordings/{world['own_transfer']}/audio")
    with database.session() as session:
        session.add(listen_row("boss", world["message"], 60 * 24 * 3))

    result = ivr(settings, "--user", "wang", "--action", "listen")
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    assert header.split() == ["AT", "WHO", "VIA", "ACTION", "RECORDING", "TICKET", "FROM", "DETAIL"]
    assert [line.split()[2:5] for line in lines] == [["wang", "console", "listen"]] * 2
    assert world["own_transfer"] in lines[0] and world["message"] in lines[1]  # newest first
    assert "10.0.0.7" in lines[1] and "range=bytes=0-" in lines[1]

    by_recording = ivr(settings, "--recording", world["message"]).output.splitlines()[1:]
    assert [line.split()[2] for line in by_recording] == ["wang", "boss"]
    yesterday = (utcnow() - timedelta(days=1)).date().isoformat()
    recent = ivr(settings, "--recording", world["message"], "--since", yesterday).output.splitlines()[1:]
    assert [line.split()[2] for line in recent] == ["wang"]
    assert ivr(settings, "--since", "2999-01-01").output.strip() == "no audit rows match"
    refused = ivr(settings, "--since", "last week")
    assert refused.exit_code == 2 and "is not a date" in refused.output


def test_the_command_knows_every_audited_action():
    assert set(ACTIONS) == set(ACTION_LABELS)
