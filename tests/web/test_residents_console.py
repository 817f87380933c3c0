"""The registry in the console: 来电弹屏 on the ticket page (the resident registered for the caller's number and
their recent tickets), the admins' page to add, rename and remove registered phones, and the line's fee audit
rows on the audit page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ivr.devphone.callers import HANGUP
from ivr.fees.ledger import import_fee_rows, parse_fee_csv
from ivr.models import DEFAULT_PROPERTY_ID, Resident, Ticket
from ivr.properties import save_property
from tests.factories import FIXTURES, create_staff, create_ticket, csrf_from, login

RESIDENT = "+8613912345678"
OTHER = "+8613600000006"


@pytest.fixture
def east(database) -> int:
    with database.session() as session:
        return save_property(session, "east", name="东方花园", numbers=("+862160000001",)).id


@pytest.fixture
def night(database, client):
    create_staff(database, "wang", "night_shift")
    assert login(client, "wang").status_code == 302
    return client


@pytest.fixture
def admin(database, app):
    client = app.test_client()
    create_staff(database, "boss", "admin")
    assert login(client, "boss").status_code == 302
    return client


def register(database, room: str, name: str | None, phone: str, property_id: int = DEFAULT_PROPERTY_ID) -> None:
    with database.session() as session:
        session.add(Resident(property_id=property_id, room=room, name=name, phone=phone))


def ticket_links(page: str) -> set[int]:
    card = page[page.index('id="caller-card"') : page.index('id="audio-h"')]
    return {int(found) for found in re.findall(r'href="/console/tickets/(\d+)"', card)}


# --- 来电弹屏 -----------------------------------------------------------------------------------


def test_the_ticket_page_shows_the_registered_resident_and_their_recent_tickets(night, database, east):
    register(database, "3-2-501", "张伟", RESIDENT)
    register(database, "5-1-202", "张伟", RESIDENT)
    register(database, "3-2-501", "王芳", RESIDENT, east)  # another property's registry: not this call's
    same_number = [create_ticket(database, caller=RESIDENT, room="5-1-202") for _ in range(2)]
    same_room = create_ticket(database, caller=OTHER, room="3-2-501")
    unrelated = create_ticket(database, caller=OTHER, room="9-9-909")
    elsewhere = create_ticket(database, caller=RESIDENT, room="3-2-501", property_id=east)
    this = create_ticket(database, caller=RESIDENT, room="3-2-501", room_from_registry=True)

    page = night.get(f"/console/tickets/{this}").get_data(as_text=True)
    assert "登记为:" in page and "3-2-501 张伟" in page and "5-1-202 张伟" in page and "王芳" not in page
    assert 'id="room-from-registry"' in page  # the room came from the registry
    assert ticket_links(page) == {*same_number, same_room}
    assert (
        this not in ticket_links(page) and unrelated not in ticket_links(page) and elsewhere not in ticket_links(page)
    )
    assert "(其他号码来电)" in page  # the same room, called about from another number


def test_only_the_last_five_other_tickets_are_shown_newest_first(night, database):
    older = [create_ticket(database, caller=RESIDENT, room="3-2-501") for _ in range(6)]
    this = create_ticket(database, caller=RESIDENT, room="3-2-501")
    page = night.get(f"/console/tickets/{this}").get_data(as_text=True)
    card = page[page.index('id="caller-card"') : page.index('id="audio-h"')]
    shown = [int(found) for found in re.findall(r'href="/console/tickets/(\d+)"', card)]
    assert shown == older[:0:-1]  # the five newest, the oldest left out


def test_an_unregistered_number_is_said_so(night, database):
    this = create_ticket(database, caller=OTHER, room="3-2-501")
    page = night.get(f"/console/tickets/{this}").get_data(as_text=True)
    assert f"来电号码 {OTHER}未在本小区住户登记中" in page and 'id="room-from-registry"' not in page


def test_a_department_sees_only_its_own_tickets_among_the_recent(database, app):
    mine = create_ticket(database, caller=RESIDENT, department="工程部")
    theirs = create_ticket(database, caller=RESIDENT, department="保洁")
    this = create_ticket(database, caller=RESIDENT, department="工程部")
    client = app.test_client()
    create_staff(database, "gong", "department", department="工程部")
    assert login(client, "gong").status_code == 302
    page = client.get(f"/console/tickets/{this}").get_data(as_text=True)
    assert ticket_links(page) == {mine} and theirs not in ticket_links(page)


# --- the admins' page ---------------------------------------------------------------------------


def residents_of(database) -> list[tuple[str, str | None, str, str | None]]:
    with database.session() as session:
        return sorted((r.room, r.name, r.phone, r.updated_by) for r in session.scalars(select(Resident)))


def test_an_admin_adds_renames_and_removes_a_registered_phone(admin, database):
    path = "/console/residents"
    added = admin.post(
        path,
        data={
            "csrf_token": csrf_from(admin, path),
            "property": "default",
            "room": "3-2-501",
            "name": "张伟",
            "phone": "139 1234 5678",
        },
        follow_redirects=True,
    )
    assert added.status_code == 200 and "已登记 3-2-501 张伟 +8613912345678" in added.get_data(as_text=True)
    assert residents_of(database) == [("3-2-501", "张伟", "+8613912345678", "boss")]
    page = admin.get(path).get_data(as_text=True)
    assert "显示第 1–1 条,共 1 条" in page and "+8613912345678" in page

    with database.session() as session:
        resident_id = session.scalars(select(Resident.id)).one()
    renamed = admin.post(
        f"{path}/{resident_id}",
        data={"csrf_token": csrf_from(admin, path), "action": "rename", "name": "张伟伟"},
        follow_redirects=True,
    )
    assert "已更新 3-2-501 +8613912345678 的姓名" in renamed.get_data(as_text=True)
    assert residents_of(database) == [("3-2-501", "张伟伟", "+8613912345678", "boss")]

    removed = admin.post(
        f"{path}/{resident_id}", data={"csrf_token": csrf_from(admin, path), "action": "remove"}, follow_redirects=True
    )
    assert "已从 3-2-501 删除电话 +8613912345678" in removed.get_data(as_text=True)
    assert residents_of(database) == []


def test_a_bad_phone_or_a_second_registration_is_refused_in_chinese(admin, database):
    path = "/console/residents"
    register(database, "3-2-501", "张伟", RESIDENT)
    form = {"property": "default", "room": "3-2-501", "name": "李娜"}
    bad = admin.post(
        path, data={**form, "phone": "62345678", "csrf_token": csrf_from(admin, path)}, follow_redirects=True
    )
    assert "电话“62345678”不是有效号码" in bad.get_data(as_text=True)
    twice = admin.post(
        path, data={**form, "phone": RESIDENT, "csrf_token": csrf_from(admin, path)}, follow_redirects=True
    )
    assert f"3-2-501 已登记电话 {RESIDENT}" in twice.get_data(as_text=True)
    room = admin.post(
        path, data={**form, "room": "3-2", "phone": OTHER, "csrf_token": csrf_from(admin, path)}, follow_redirects=True
    )
    assert "房号“3-2”格式不正确" in room.get_data(as_text=True)
    assert residents_of(database) == [("3-2-501", "张伟", RESIDENT, None)]


def test_the_page_shows_the_chosen_property_and_finds_by_part_of_a_phone(admin, database, east):
    register(database, "3-2-501", "张伟", RESIDENT)
    register(database, "7-1-701", "王芳", OTHER, east)
    default = admin.get("/console/residents").get_data(as_text=True)
    assert "张伟" in default and "王芳" not in default
    there = admin.get("/console/residents?property=east").get_data(as_text=True)
    assert "王芳" in there and "张伟" not in there
    found = admin.get("/console/residents?property=east&q=600000").get_data(as_text=True)
    assert "王芳" in found and "共 1 条" in found
    none = admin.get("/console/residents?property=east&q=139").get_data(as_text=True)
    assert "没有符合“139”的登记" in none
    assert admin.get("/console/residents?property=nowhere").status_code == 404


def test_an_admin_of_one_property_sees_and_changes_only_its_registry(database, app, east):
    from ivr.staff import create_user
    from tests.factories import PASSWORD

    register(database, "3-2-501", "张伟", RESIDENT)
    with database.session() as session:
        create_user(session, "dong", PASSWORD, "admin", property_codes=["east"])
        theirs = session.scalars(select(Resident.id)).one()
    client = app.test_client()
    assert login(client, "dong").status_code == 302
    page = client.get("/console/residents").get_data(as_text=True)
    assert "住户登记:东方花园" in page and "幸福家园" not in page.split("<main")[1]
    assert client.get("/console/residents?property=default").status_code == 404
    token = csrf_from(client, "/console/residents")
    assert (
        client.post(f"/console/residents/{theirs}", data={"csrf_token": token, "action": "remove"}).status_code == 404
    )
    form = {"csrf_token": token, "property": "default", "room": "5-1-202", "phone": OTHER}
    assert client.post("/console/residents", data=form).status_code == 404
    assert residents_of(database) == [("3-2-501", "张伟", RESIDENT, None)]


def test_only_admins_may_see_or_change_the_registry(night, database):
    register(database, "3-2-501", "张伟", RESIDENT)
    with database.session() as session:
        resident_id = session.scalars(select(Resident.id)).one()
    assert night.get("/console/residents").status_code == 403
    token = csrf_from(night, "/console/")
    assert night.post("/console/residents", data={"csrf_token": token, "property": "default"}).status_code == 403
    removed = night.post(f"/console/residents/{resident_id}", data={"csrf_token": token, "action": "remove"})
    assert removed.status_code == 403
    assert residents_of(database) == [("3-2-501", "张伟", RESIDENT, None)]
    assert "住户登记" not in night.get("/console/").get_data(as_text=True)  # no nav link either


def test_a_change_without_the_csrf_token_is_refused(admin, database):
    register(database, "3-2-501", "张伟", RESIDENT)
    response = admin.post("/console/residents", data={"property": "default", "room": "5-1-202", "phone": OTHER})
    assert response.status_code == 400
    assert len(residents_of(database)) == 1


# --- the line's fee answers on the audit page ---------------------------------------------------


def test_the_fee_answers_of_the_line_are_on_the_audit_page(phone, admin, database):
    register(database, "3-2-501", "张伟", RESIDENT)
    with database.session() as session:
        import_fee_rows(session, parse_fee_csv((FIXTURES / "fees" / "valid.csv").read_bytes()))
    phone.call(["3", "1", HANGUP], from_=RESIDENT).raise_for_errors()
    phone.call(["3", "3*2*501#", "1", HANGUP], from_=OTHER).raise_for_errors()
    page = admin.get("/console/audit").get_data(as_text=True)
    rows = re.findall(r'<tr data-audit="\d+" data-action="(fee_\w+)">(.*?)</tr>', page, re.S)
    assert [action for action, _ in rows] == ["fee_refused", "fee_told"]  # newest first
    refused = rows[0][1]
    assert f"caller:{OTHER}" in refused and "room=3-2-501" in refused and "property=default" in refused
    with database.session() as session:
        assert session.scalars(select(Ticket)).all() == []  # fee answers alone make no ticket
