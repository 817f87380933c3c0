"""The console computed in the database: the queue's order and pages, search for Chinese of any length kept
current on every write, and the indexes those queries stand on (EXPLAIN on SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import text

from ivr.access import TicketScope
from ivr.db import utcnow
from ivr.followup.report import PropertyZones, call_satisfaction_counts, follow_up_counts, report_weeks
from ivr.models import Call, Category, Ticket, TicketStatus
from ivr.tickets.search import search_tickets
from ivr.tickets.sla import queue_order_by
from ivr.web.dashboard import closed_count, open_counts
from ivr.web.queue import filtered_query
from tests.factories import create_staff, create_ticket, csrf_from, login


@pytest.fixture
def night(database, client):
    create_staff(database, "wang", "night_shift")
    assert login(client, "wang").status_code == 302
    return client


def numbers_listed(client, query: str = "") -> list[str]:
    page = client.get(f"/console/{query}").get_data(as_text=True)
    return re.findall(r'<a href="/console/tickets/\d+">([^<]+)</a>', page)


def pager(client, query: str = "") -> str:
    page = client.get(f"/console/{query}").get_data(as_text=True)
    return re.search(r'<nav class="pager".*?</nav>', page, re.S).group(0)


def seed_old_tickets(database, count: int) -> None:
    """`count` ordinary tickets from the last days, on time or overdue, none urgent."""
    now = utcnow()
    with database.session() as session:
        for index in range(count):
            started = now - timedelta(minutes=5 * index)
            call = Call(call_sid=f"CA{index:032d}", from_number="+8613900000000", started_at=started)
            session.add(
                Ticket(
                    number=f"OLD{index:05d}",
                    category=Category.REPAIR,
                    room=f"9-9-{index:03d}",
                    call=call,
                    created_at=started,
                )
            )


def test_an_urgent_ticket_created_last_is_first_on_page_one_of_601(night, database):
    seed_old_tickets(database, 600)
    urgent_id = create_ticket(database, room="1-1-101", urgent=True, urgent_reason="跑水")
    with database.session() as session:
        urgent_number = session.get(Ticket, urgent_id).number
    listed = numbers_listed(night)
    assert len(listed) == 50 and listed[0] == urgent_number
    # Then the overdue ones (older than an hour, not forwarded), the most overdue first.
    assert listed[1] == "OLD00599"


def test_the_queue_says_which_rows_of_how_many_and_links_the_pages(night, database):
    seed_old_tickets(database, 120)
    first = pager(night)
    assert "显示第 1–50 条,共 120 条" in first
    assert 'href="/console/?page=2" rel="next"' in first and 'rel="prev"' not in first
    assert "显示第 101–120 条,共 120 条" in pager(night, "?page=3")
    last = pager(night, "?page=3&category=repair")
    assert 'href="/console/?category=repair&amp;page=2" rel="prev"' in last and 'rel="next"' not in last
    # The pages follow each other without a gap or a repeat.
    pages = [numbers_listed(night, f"?page={n}") for n in (1, 2, 3)]
    assert sorted(number for page in pages for number in page) == sorted(f"OLD{i:05d}" for i in range(120))
    assert "共 0 条" in pager(night, "?q=没有这样的话")


@pytest.mark.parametrize("words", ["漏", "漏水", "天花板漏水"])
def test_search_finds_chinese_of_one_two_and_more_characters(night, database, words):
    said = create_ticket(database, room="1-1-101", transcript="厨房天花板漏水了")
    other = create_ticket(database, room="2-2-202", transcript="楼道灯不亮")
    with database.session() as session:
        said_number, other_number = session.get(Ticket, said).number, session.get(Ticket, other).number
    assert numbers_listed(night, f"?q={words}") == [said_number]
    assert other_number not in numbers_listed(night, f"?q={words}")


@pytest.mark.parametrize("words", ["燃", "燃气", "燃气味"])
def test_a_correction_and_a_note_are_found_at_once(night, database, words):
    ticket_id = create_ticket(database, room="3-3-303", transcript="然七味道很大")
    create_ticket(database, room="4-4-404", transcript="楼道灯不亮")
    path = f"/console/tickets/{ticket_id}"
    assert numbers_listed(night, f"?q={words}") == []
    night.post(f"{path}/transcript", data={"csrf_token": csrf_from(night, path), "text": "燃气味道很大"})
    with database.session() as session:
        number = session.get(Ticket, ticket_id).number
    assert numbers_listed(night, f"?q={words}") == [number]
    assert numbers_listed(night, "?q=然七") == [number]  # the machine's words still find it

    noted = create_ticket(database, room="5-5-505", transcript="门禁坏了")
    note_path = f"/console/tickets/{noted}"
    night.post(f"{note_path}/notes", data={"csrf_token": csrf_from(night, note_path), "text": "业主说有燃气味道"})
    with database.session() as session:
        noted_number = session.get(Ticket, noted).number
    assert sorted(numbers_listed(night, f"?q={words}")) == sorted([number, noted_number])


# EXPLAIN: the queries the pages run use the indexes made for them ------------------------------------------


def _plan(database, statement) -> str:
    engine = database.engine
    compiled = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled).all()
            return "\n".join(row[-1] for row in rows)
        # Tiny test tables are cheapest to scan: forbid that, so only a missing index leaves a Seq Scan.
        connection.execute(text("SET enable_seqscan = off"))
        return "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + compiled).all())


def _full_scans(plan: str, tables: tuple[str, ...]) -> list[str]:
    found = []
    for line in plan.splitlines():
        for table in tables:
            if re.search(rf"\bSCAN {table}\b(?! (USING|VIRTUAL))", line) or re.search(rf"Seq Scan on {table}\b", line):
                found.append(line.strip())
    return found


SEARCHED = ("tickets", "transcripts", "ticket_notes", "recordings")


def test_the_open_queue_reads_the_open_queue_index(database):
    statement = filtered_query({}).order_by(*queue_order_by(utcnow())).limit(50)
    plan = _plan(database, statement)
    assert "ix_tickets_open_queue" in plan, plan
    assert _full_scans(plan, ("tickets",)) == [], plan


def test_closed_tickets_and_a_room_are_read_through_indexes(database):
    closed = filtered_query({"status": "closed"}).order_by(Ticket.created_at.desc()).limit(50)
    assert _full_scans(_plan(database, closed), ("tickets",)) == []
    room = filtered_query({"room": "3-2", "status": "closed"}).order_by(Ticket.created_at.desc()).limit(50)
    plan = _plan(database, room)  # the room's index, or (without statistics) the closed ones newest first
    assert re.search(r"ix_tickets_(room|status_created_at)", plan) and _full_scans(plan, ("tickets",)) == [], plan


def _first_line(plan: str, pattern: str) -> int:
    lines = plan.splitlines()
    return next((number for number, line in enumerate(lines) if re.search(pattern, line)), len(lines))


@pytest.mark.parametrize("words", ["漏", "漏水", "漏水了"])
def test_search_reads_ticket_ids_newest_first_from_the_search_documents(database, words):
    found, ticket_id = search_tickets(filtered_query({"status": "closed"}), words, database.engine.dialect)
    statement = found.with_only_columns(Ticket.id).order_by(ticket_id.desc()).limit(1001)
    plan = _plan(database, statement)
    assert _full_scans(plan, SEARCHED) == [], plan
    if database.engine.dialect.name == "sqlite":
        assert re.search(r"SCAN search_docs_(tri|chars) VIRTUAL TABLE", plan), plan
        assert "TEMP B-TREE" not in plan, plan  # FTS5 hands out its rowids (ticket ids) in order: nothing sorted
    else:
        assert "search_docs_grams" in plan, plan
        # The found ids are sorted before the join, which then stops at the LIMIT: no sort of the joined rows.
        assert _first_line(plan, r"Nested Loop|Hash Join|Merge Join") < _first_line(plan, r"Sort"), plan


def test_the_overview_counts_open_tickets_in_one_pass_of_the_open_queue_index(database):
    plan = _plan(database, open_counts(utcnow()))
    assert "ix_tickets_open_queue" in plan and _full_scans(plan, ("tickets",)) == [], plan
    plan = _plan(database, closed_count())  # every closed ticket, from the (status, created_at) index alone
    assert "ix_tickets_status_created_at" in plan and _full_scans(plan, ("tickets",)) == [], plan


@pytest.mark.parametrize("zones", [PropertyZones("Asia/Shanghai"), PropertyZones("Asia/Shanghai", {2: "Asia/Urumqi"})])
def test_the_follow_up_report_reads_tickets_by_id_and_inbound_scores_by_creation(database, zones):
    weeks = report_weeks("2026-W42", "2026-W49")
    for scope in (TicketScope(), TicketScope(properties=frozenset({1})), TicketScope(frozenset({"工程部"}))):
        # The weeks' follow-ups through their created_at index (migration 0013), each ticket by id.
        plan = _plan(database, follow_up_counts(weeks, zones, scope))
        assert _full_scans(plan, ("tickets", "follow_ups")) == [], plan
        assert "ix_follow_ups_created_at" in plan, plan
        if database.engine.dialect.name == "sqlite":  # not a property's tickets, each looking up its follow-ups
            assert "SEARCH tickets USING INTEGER PRIMARY KEY" in plan, plan
        if scope.departments is None:  # the report's readers (department accounts see only the overview's figures)
            plan = _plan(database, call_satisfaction_counts(weeks, zones, scope))
            assert re.search(r"ix_tickets_(call_satisfaction|created_at|property_id)", plan), plan
            assert _full_scans(plan, ("tickets",)) == [], plan


def test_the_overview_counts_the_clocks_in_sql(night, database):
    registered_late = create_ticket(database, room="1-1-101")
    dispatched = create_ticket(database, room="2-2-202", status=TicketStatus.DISPATCHED, department="工程部")
    with database.session() as session:
        session.get(Call, session.get(Ticket, registered_late).call_id).started_at = utcnow() - timedelta(hours=2)
        session.get(Ticket, dispatched).urgent = True
    page = night.get("/console/dashboard").get_data(as_text=True)
    assert re.search(r'id="overdue-dispatch"><span class="big">1<', page), page
    assert re.search(r'<span class="big">2</span>未关闭工单', page), page
    assert re.search(r'<span class="big">1</span>紧急', page), page


def bars(page: str, title: str) -> dict[str, int]:
    chart = re.search(rf'<figure class="chart" aria-label="{re.escape(title)}">.*?</figure>', page, re.S).group(0)
    return {label: int(value) for label, value in re.findall(r"<tr><th>([^<]+)</th><td>(\d+)</td></tr>", chart)}


def test_the_overview_charts_open_tickets_by_category_and_every_ticket_by_state(night, database):
    create_ticket(database, room="1-1-101", category=Category.REPAIR)
    create_ticket(
        database, room="1-1-102", category=Category.REPAIR, status=TicketStatus.DISPATCHED, department="工程部"
    )
    create_ticket(database, room="2-2-202", category=Category.COMPLAINT, status=TicketStatus.IN_PROGRESS)
    create_ticket(database, room="3-3-303", category=Category.FEE, status=TicketStatus.CLOSED)
    page = night.get("/console/dashboard").get_data(as_text=True)
    assert bars(page, "未关闭工单(按类别)") == {"报修": 2, "投诉": 1, "物业费": 0, "紧急": 0, "其他": 0}
    by_state = bars(page, "全部工单(按状态)")
    assert {label: n for label, n in by_state.items() if n} == {"已登记": 1, "已转交": 1, "处理中": 1, "已关闭": 1}
    assert re.search(r'<span class="big">3</span>未关闭工单', page), page


def test_the_caller_s_other_tickets_are_found_through_the_room_and_number_indexes(database):
    from ivr.residents.caller_card import recent_tickets_query

    ticket = Ticket(id=1, property_id=1, room="3-2-501", caller_number="+8613912345678")
    plan = _plan(database, recent_tickets_query(ticket))
    assert "ix_tickets_room" in plan and "ix_tickets_caller_number" in plan, plan
    assert _full_scans(plan, ("tickets",)) == [], plan
