"""The console's 回访 page: follow-ups scheduled (when, which attempt), calling, and those to call back by hand,
each linking to its ticket, paged; an account of some properties sees only their follow-ups."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ivr.db import frozen_clock
from ivr.models import FollowUp, FollowUpState, Ticket, TicketStatus
from ivr.properties import property_directory, save_property
from ivr.staff import create_user
from tests.factories import PASSWORD, create_staff, create_ticket, login

SHANGHAI = ZoneInfo("Asia/Shanghai")
RESIDENT = "+8613900001111"


def at(clock: str, day: str = "2026-12-01") -> datetime:
    return datetime.fromisoformat(f"{day} {clock}").replace(tzinfo=SHANGHAI).astimezone(UTC)


def follow_up(
    database,
    state: FollowUpState,
    *,
    property_id: int = 1,
    status: TicketStatus = TicketStatus.RESOLVED,
    **fields,
) -> tuple[int, int]:
    """A resolved ticket of the property with a follow-up in `state`; (ticket id, follow-up id)."""
    ticket_id = create_ticket(database, status=status, property_id=property_id, caller=RESIDENT)
    with database.session() as session:
        row = FollowUp(ticket_id=ticket_id, property_id=property_id, phone=RESIDENT, state=state, **fields)
        session.add(row)
        session.flush()
        return ticket_id, row.id


def section(page: str, name: str) -> str:
    """One list of the page (its card), by id."""
    start = page.index(f'<section class="card" id="{name}"')
    return page[start : page.index("</section>", start)]


def linked_tickets(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'href="/console/tickets/(\d+)"', html)]


@pytest.fixture
def night(database, client):
    create_staff(database, "wang", "night_shift")
    assert login(client, "wang").status_code == 302
    return client


def test_the_night_shift_sees_what_is_due_calling_and_to_call_back_by_hand(database, night):
    due, _ = follow_up(database, FollowUpState.SCHEDULED, due_at=at("13:30"), attempts=1, last_outcome="no-answer")
    calling, _ = follow_up(database, FollowUpState.CALLING, attempts=2, last_attempt_at=at("10:00"))
    gave_up, _ = follow_up(
        database, FollowUpState.UNREACHABLE, attempts=3, reason="回访电话3次未能完成(最后一次:占线),请人工回访"
    )
    opted, _ = follow_up(database, FollowUpState.OPTED_OUT, reason="住户在回访电话中选择不再接收回访")
    follow_up(database, FollowUpState.UNREACHABLE, status=TicketStatus.CLOSED)  # followed up by hand since
    follow_up(database, FollowUpState.DONE, status=TicketStatus.CLOSED, satisfaction=5)

    response = night.get("/console/follow-ups")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<a href="/console/follow-ups">回访</a>' in page  # in the menu
    # The weekly report and its chart are the 回访周报 page's, linked from here: the night shift's lists stay fast.
    assert 'href="/console/follow-ups/report"' in section(page, "report-link") and "<svg" not in page

    scheduled = section(page, "scheduled")
    assert linked_tickets(scheduled) == [due]
    assert "2026-12-01 13:30" in scheduled and "2/3" in scheduled and "无人接听" in scheduled
    calling_card = section(page, "calling")
    assert linked_tickets(calling_card) == [calling] and "2/3" in calling_card and "2026-12-01 10:00" in calling_card
    by_hand = section(page, "by-hand")
    assert linked_tickets(by_hand) == [gave_up, opted]
    assert "3次未能完成(最后一次:占线)" in by_hand and "选择不再接收回访" in by_hand


def test_a_ticket_is_on_the_by_hand_list_once_by_its_latest_follow_up(database, night):
    ticket_id, _ = follow_up(database, FollowUpState.UNREACHABLE, reason="第一次办结后:无人接听")
    with database.session() as session:  # reopened and resolved again: a second follow-up, unreachable too
        session.add(
            FollowUp(
                ticket_id=ticket_id, property_id=1, phone=RESIDENT, state=FollowUpState.UNREACHABLE, reason="第二次"
            )
        )
    by_hand = section(night.get("/console/follow-ups").get_data(as_text=True), "by-hand")
    assert linked_tickets(by_hand) == [ticket_id] and "第二次" in by_hand and "第一次" not in by_hand


def test_each_list_is_paged_on_its_own(database, night):
    for minute in range(51):
        follow_up(database, FollowUpState.SCHEDULED, due_at=at(f"14:{minute:02d}"))
    follow_up(database, FollowUpState.UNREACHABLE, reason="无可拨号码")
    first = night.get("/console/follow-ups").get_data(as_text=True)
    assert "显示第 1–50 条,共 51 条" in section(first, "scheduled")
    assert "2026-12-01 14:49" in first and "2026-12-01 14:50" not in first
    assert 'href="/console/follow-ups?scheduled_page=2"' in section(first, "scheduled")
    second = night.get("/console/follow-ups?scheduled_page=2").get_data(as_text=True)
    assert "显示第 51–51 条,共 51 条" in section(second, "scheduled") and "2026-12-01 14:50" in second
    assert "无可拨号码" in section(second, "by-hand")  # the other lists stay on their first page


def test_an_account_of_one_property_sees_only_its_follow_ups(app, database):
    with database.session() as session:
        east = save_property(session, "east", name="东方花园", numbers=("+862160000001",)).id
        west = save_property(session, "west", name="西城花园", numbers=("+862160000002",)).id
        create_user(session, "e-wang", PASSWORD, "night_shift", property_codes=("east",))
        create_user(session, "hq", PASSWORD, "manager")
    with app.extensions["ivr.database"].session() as session:
        property_directory(session).reload()
    listed_states = (FollowUpState.SCHEDULED, FollowUpState.CALLING, FollowUpState.UNREACHABLE, FollowUpState.OPTED_OUT)
    east_ids = {follow_up(database, state, property_id=east)[0] for state in listed_states}
    west_ids = {follow_up(database, state, property_id=west)[0] for state in listed_states}

    def listed(client, path: str = "/console/follow-ups") -> set[int]:
        page = client.get(path).get_data(as_text=True)
        return {
            ticket for name in ("scheduled", "calling", "by-hand") for ticket in linked_tickets(section(page, name))
        }

    east_client = app.test_client()
    login(east_client, "e-wang")
    assert listed(east_client) == east_ids
    assert "东方花园" in east_client.get("/console/follow-ups").get_data(as_text=True)
    assert listed(east_client, "/console/follow-ups?property=west") == set()  # not theirs: nothing

    company = app.test_client()
    login(company, "hq")
    assert listed(company) == east_ids | west_ids
    assert listed(company, "/console/follow-ups?property=west") == west_ids


def test_a_department_account_has_no_follow_up_page(database, client):
    create_staff(database, "gong", "department", department="工程部")
    login(client, "gong")
    assert client.get("/console/follow-ups").status_code == 403
    assert 'href="/console/follow-ups"' not in client.get("/console/").get_data(as_text=True)


def test_the_weekly_report_on_the_page_and_as_csv_keeps_to_the_accounts_properties(app, database):
    with database.session() as session:
        east = save_property(session, "east", name="东方花园", numbers=("+862160000001",)).id
        west = save_property(session, "west", name="=西城花园", numbers=("+862160000002",)).id
        create_user(session, "e-boss", PASSWORD, "manager", property_codes=("east",))
        create_user(session, "hq", PASSWORD, "manager")
    with app.extensions["ivr.database"].session() as session:
        property_directory(session).reload()
    for property_id, score in ((east, 4), (east, 2), (west, 5)):
        _, row = follow_up(
            database,
            FollowUpState.DONE,
            property_id=property_id,
            resolved=score > 3,
            satisfaction=score,
            created_at=at("10:00"),  # 2026-W49
        )
        with database.session() as session:
            session.get(FollowUp, row).ticket.department = "工程部"
    follow_up(database, FollowUpState.UNREACHABLE, property_id=east, created_at=at("10:00", "2026-11-20"))  # W47
    for score in (5, 4):  # the callers' own score at the end of the calls that reported two tickets
        create_ticket(
            database,
            property_id=east,
            department="工程部",
            created_at=at("09:00", "2026-12-02"),
            call_satisfaction=score,
        )

    company = app.test_client()
    login(company, "hq")
    with frozen_clock(at("12:00")):  # this week: 2026-W49
        page = company.get("/console/follow-ups/report").get_data(as_text=True)
    report = section(page, "report")
    assert "本周回访统计(2026-W49)" in report
    assert "<td>东方花园</td><td>工程部</td>" in report and "<td>3.0</td>" in report
    assert '<td class="call-satisfaction">4.5(2)</td>' in report
    assert 'href="/console/follow-ups/report.csv"' in report
    csv = company.get("/console/follow-ups/report.csv?start=2026-W47&end=2026-W52")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert 'filename="follow-up-report-2026-W47-2026-W52.csv"' in csv.headers["Content-Disposition"]
    body = csv.get_data(as_text=True)
    assert body.startswith("\ufeff")  # for Excel
    lines = body.removeprefix("\ufeff").splitlines()
    assert lines[0] == (
        "周,小区,部门,应回访,已回访,未接通,不再接收回访,未解决,回访评分数,回访平均满意度,来电评分数,来电平均满意度"
    )
    assert lines[1:] == [
        "2026-W47,东方花园,未派单,1,0,1,0,0,0,,0,",  # no score: empty, not 0
        "2026-W49,东方花园,工程部,2,2,0,0,1,2,3.0,2,4.5",
        "2026-W49,'=西城花园,工程部,1,1,0,0,0,1,5.0,0,",  # no formula for a spreadsheet to run
    ]

    east_manager = app.test_client()
    login(east_manager, "e-boss")
    own = east_manager.get("/console/follow-ups/report.csv?start=2026-W47&end=2026-W52").get_data(as_text=True)
    assert "东方花园" in own and "西城花园" not in own
    with frozen_clock(at("12:00")):
        own_page = east_manager.get("/console/follow-ups/report").get_data(as_text=True)
    assert "东方花园" in section(own_page, "report") and "西城花园" not in section(own_page, "report")
    assert east_manager.get("/console/follow-ups/report.csv?start=2026-49").status_code == 400
    too_long = east_manager.get("/console/follow-ups/report.csv?start=2000-W01&end=2026-W49")
    assert too_long.status_code == 400 and "最多统计" in too_long.get_data(as_text=True)


# The chart of the last 8 weeks and the overview's 本周待回访 ------------------------------------------------


def week_bars(page: str, week: str) -> dict[str, float]:
    """The heights of one week's bars in the chart, by series."""
    group = re.search(rf'<g class="week" data-week="{week}">(.*?)</g>', page, re.S).group(1)
    return {css: float(height) for height, css in re.findall(r'height="([\d.]+)" class="bar (\w+)"', group)}


def two_properties(app, database) -> tuple[int, int]:
    """东方花园 (east) and 西城花园 (west); accounts: e-wang (night shift, east), hq (company-wide manager), gong
    (工程部, company-wide)."""
    with database.session() as session:
        east = save_property(session, "east", name="东方花园", numbers=("+862160000001",)).id
        west = save_property(session, "west", name="西城花园", numbers=("+862160000002",)).id
        create_user(session, "e-wang", PASSWORD, "night_shift", property_codes=("east",))
        create_user(session, "hq", PASSWORD, "manager")
        create_user(session, "gong", PASSWORD, "department", department="工程部")
    with app.extensions["ivr.database"].session() as session:
        property_directory(session).reload()
    return east, west


def logged_in(app, username: str):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def test_the_chart_has_a_week_s_bars_scaled_to_the_largest_and_its_satisfaction(app, database):
    east, west = two_properties(app, database)
    for property_id, state, score in (
        (east, FollowUpState.DONE, 4),
        (east, FollowUpState.DONE, 2),
        (west, FollowUpState.DONE, 5),
    ):
        follow_up(database, state, property_id=property_id, satisfaction=score, created_at=at("10:00"))  # W49
    follow_up(database, FollowUpState.UNREACHABLE, property_id=east, created_at=at("10:00", "2026-11-20"))  # W47
    create_ticket(database, property_id=west, created_at=at("09:00"), call_satisfaction=1)

    with frozen_clock(at("12:00")):
        page = logged_in(app, "hq").get("/console/follow-ups/report")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    chart = section(html, "report-weeks")
    assert re.search(
        r'<svg viewBox="0 0 640 240" role="img" aria-labelledby="report-chart-title report-chart-desc">', chart
    )
    assert '<title id="report-chart-title">最近8周回访' in chart
    assert re.findall(r'data-week="(2026-W\d+)"', chart) == [f"2026-W{n}" for n in range(42, 50)] * 2  # bars, table
    # The largest figure (3 due in W49) is the axis's top: the plot's full 176 units; W47's one is a third.
    assert week_bars(chart, "2026-W49") == {"due": 176.0, "done": 176.0, "unreachable": 0.0}
    assert week_bars(chart, "2026-W47") == {"due": 58.7, "done": 0.0, "unreachable": 58.7}
    assert week_bars(chart, "2026-W45") == {"due": 0.0, "done": 0.0, "unreachable": 0.0}
    assert "<title>回访满意度:3.7</title>" in chart and "<title>来电满意度:1.0</title>" in chart
    assert '<tr data-week="2026-W49">\n      <td>2026-W49</td><td>3</td><td>3</td><td>0</td><td>0</td>' in chart
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # nothing inline for the CSP to refuse

    with frozen_clock(at("12:00")):  # an account of east: only east's follow-ups, in the chart too
        own = section(logged_in(app, "e-wang").get("/console/follow-ups/report").get_data(as_text=True), "report-weeks")
    assert week_bars(own, "2026-W49") == {"due": 176.0, "done": 176.0, "unreachable": 0.0}  # 2 of 2
    assert "<title>回访满意度:3.0</title>" in own and "来电满意度:" not in own  # west's caller is not theirs


def follow_ups_card(client, query: str = "") -> str:
    """The overview's 本周待回访 card, on Tuesday of 2026-W49."""
    with frozen_clock(at("12:00")):
        page = client.get(f"/console/dashboard{query}").get_data(as_text=True)
    start = page.index('id="follow-ups-week"')
    return page[start : page.index("</section>", start)]


def overview_figures(client, query: str = "") -> dict[str, int]:
    card = follow_ups_card(client, query)
    assert "本周待回访(2026-W49)" in card
    figures = dict(re.findall(r'id="follow-ups-([a-z-]+)"><span class="big">(\d+)</span>', card))
    return {name: int(value) for name, value in figures.items()} | {"linked": 'href="/console/follow-ups' in card}


def test_the_overview_s_follow_ups_this_week_are_the_report_s_for_the_account_s_properties(app, database):
    east, west = two_properties(app, database)
    for state in (FollowUpState.DONE, FollowUpState.SCHEDULED, FollowUpState.UNREACHABLE):
        follow_up(database, state, property_id=east, created_at=at("10:00"))
    for state in (FollowUpState.UNREACHABLE, FollowUpState.DONE, FollowUpState.OPTED_OUT):
        follow_up(database, state, property_id=west, created_at=at("10:00"))
    follow_up(database, FollowUpState.SCHEDULED, property_id=east, created_at=at("10:00", "2026-11-27"))  # W48
    engineering, _ = follow_up(database, FollowUpState.DONE, property_id=west, created_at=at("11:00"))
    with database.session() as session:  # one of west's tickets is 工程部's
        session.get(Ticket, engineering).department = "工程部"

    hq = logged_in(app, "hq")
    assert overview_figures(hq) == {"due": 7, "done": 3, "to-do": 4, "unreachable": 2, "linked": True}
    assert overview_figures(hq, "?property=west") == {"due": 4, "done": 2, "to-do": 2, "unreachable": 1, "linked": True}
    east_night = logged_in(app, "e-wang")
    assert overview_figures(east_night) == {"due": 3, "done": 1, "to-do": 2, "unreachable": 1, "linked": True}
    assert overview_figures(east_night, "?property=west") == {
        "due": 0,
        "done": 0,
        "to-do": 0,
        "unreachable": 0,
        "linked": True,
    }
    link = re.search(r'href="(/console/follow-ups[^"]*)"', follow_ups_card(east_night, "?property=east")).group(1)
    assert link == "/console/follow-ups/report?property=east"
    # A department sees its own tickets' figures, and no link to a page it may not open.
    assert overview_figures(logged_in(app, "gong")) == {
        "due": 1,
        "done": 1,
        "to-do": 0,
        "unreachable": 0,
        "linked": False,
    }
