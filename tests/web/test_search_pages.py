"""Search results a page at a time: how many were found (or that there are more than were counted), closed
tickets newest first across pages, and the search documents (one per ticket) kept current whoever writes."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import delete, select, text, update

from ivr.db import utcnow
from ivr.migrate import alembic_config, upgrade_database
from ivr.models import Recording, RecordingSource, Ticket, TicketNote, TicketStatus, Transcript
from ivr.tickets.search import search_tickets
from ivr.web import paging
from ivr.web.queue import filtered_query
from tests.factories import create_staff, create_ticket, login


@pytest.fixture
def night(database, client):
    create_staff(database, "wang", "night_shift")
    assert login(client, "wang").status_code == 302
    return client


def listed(client, query: str) -> list[str]:
    page = client.get(f"/console/{query}").get_data(as_text=True)
    return re.findall(r'<a href="/console/tickets/\d+">([^<]+)</a>', page)


def pager(client, query: str) -> str:
    page = client.get(f"/console/{query}").get_data(as_text=True)
    return re.search(r'<nav class="pager".*?</nav>', page, re.S).group(0)


def numbers(database, ids: list[int]) -> list[str]:
    with database.session() as session:
        by_id = dict(session.execute(select(Ticket.id, Ticket.number).where(Ticket.id.in_(ids))).all())
    return [by_id[ticket_id] for ticket_id in ids]


def test_search_results_say_which_of_how_many_and_link_the_pages(night, database):
    ids = [create_ticket(database, room=f"1-1-{i:03d}", transcript="楼上漏水了") for i in range(120)]
    create_ticket(database, room="2-2-202", transcript="楼道灯不亮")
    first = pager(night, "?q=漏水")
    assert "显示第 1–50 条,共 120 条" in first
    assert re.search(r'href="/console/\?q=[^"&]+&amp;page=2" rel="next"', first) and 'rel="prev"' not in first
    assert "显示第 101–120 条,共 120 条" in pager(night, "?q=漏水&page=3")
    assert "显示第 101–120 条,共 120 条" in pager(night, "?q=漏水&page=9")  # past the last: the last
    refreshed = night.get("/console/?q=漏水", headers={"X-Partial": "rows"})  # the page's refresh: queue.js
    assert unquote(refreshed.headers["X-Queue-Summary"]) == "显示第 1–50 条,共 120 条"
    pages = [listed(night, f"?q=漏水&page={n}") for n in (1, 2, 3)]
    assert sorted(number for page in pages for number in page) == sorted(numbers(database, ids))


def test_past_the_count_cap_the_page_says_there_are_more_and_goes_on(night, database, monkeypatch):
    monkeypatch.setattr(paging, "COUNT_STEP", 100)  # as 1,000 would, with fewer tickets to make
    ids = [
        create_ticket(database, room=f"1-1-{i:03d}", transcript="电梯困人", status=TicketStatus.CLOSED)
        for i in range(120)
    ]
    first = pager(night, "?q=电梯&status=closed")
    assert "显示第 1–50 条,超过 100 条" in first and 'rel="next"' in first
    assert "显示第 51–100 条,超过 100 条" in pager(night, "?q=电梯&status=closed&page=2")
    last = pager(night, "?q=电梯&status=closed&page=3")  # page 3 counts to 200: all 120, exactly
    assert "显示第 101–120 条,共 120 条" in last and 'rel="next"' not in last
    # Closed tickets newest first, page after page, none missed or repeated.
    shown = [number for n in (1, 2, 3) for number in listed(night, f"?q=电梯&status=closed&page={n}")]
    assert shown == numbers(database, sorted(ids, reverse=True))


def test_open_search_results_keep_the_queues_order(night, database):
    calm = create_ticket(database, room="1-1-101", transcript="电梯有异响")
    urgent = create_ticket(database, room="1-1-102", transcript="电梯困人", urgent=True, urgent_reason="困人")
    assert listed(night, "?q=电梯") == numbers(database, [urgent, calm])


@pytest.mark.parametrize("words", ["漏水", "漏水了"])
def test_a_phrase_does_not_run_from_one_text_into_the_next(night, database, words):
    ticket_id = create_ticket(database, room="1-1-101", transcript="厨房的管子漏")
    with database.session() as session:
        session.add(TicketNote(ticket_id=ticket_id, author="wang", text="水了一地"))
    assert listed(night, f"?q={words}") == []
    assert listed(night, "?q=漏") == listed(night, "?q=水了") == numbers(database, [ticket_id])


def test_search_follows_every_writer(night, database):
    moved = create_ticket(database, room="1-1-101", transcript="燃气味道很大")
    other = create_ticket(database, room="2-2-202", transcript="楼道灯不亮")
    with database.session() as session:
        session.execute(update(Ticket).where(Ticket.id == other).values(room="7-7-707"))
        session.add(TicketNote(ticket_id=other, author="wang", text="业主说有异味"))
    assert listed(night, "?q=7-7-707") == listed(night, "?q=异味") == numbers(database, [other])
    assert listed(night, "?q=2-2-202") == []

    with database.session() as session:  # the take moves to the other ticket
        session.execute(update(Recording).where(Recording.ticket_id == moved).values(ticket_id=other))
    assert listed(night, "?q=燃气") == numbers(database, [other])

    with database.session() as session:  # a transfer's words are QA's, not the ticket's
        session.execute(update(Recording).where(Recording.ticket_id == other).values(source=RecordingSource.DIAL))
    assert listed(night, "?q=燃气") == []

    with database.session() as session:
        session.execute(update(TicketNote).where(TicketNote.ticket_id == other).values(text="已处理"))
        session.execute(delete(Transcript).where(Transcript.text == "楼道灯不亮"))
    assert listed(night, "?q=异味") == listed(night, "?q=灯不亮") == []
    assert listed(night, "?q=已处理") == numbers(database, [other])


def before_search_documents(config) -> str:
    """The revision just before the search documents' migration (found by its file, whatever its number)."""
    scripts = ScriptDirectory.from_config(config)
    return next(s.down_revision for s in scripts.walk_revisions() if s.path.endswith("_console_search_paging.py"))


def test_the_migration_indexes_the_tickets_already_there(settings, database, night):
    config = alembic_config(settings.database_url)
    command.downgrade(config, before_search_documents(config))
    with database.engine.begin() as connection:  # SQL, not today's models: they also write later columns
        now = {"now": utcnow()}
        call = connection.execute(
            text(
                "INSERT INTO calls (call_sid, counters, status, started_at, room_confirmed) "
                "VALUES ('CA00000000000000000000000000000001', '{}', 'completed', :now, true) RETURNING id"
            ),
            now,
        ).scalar_one()
        said = connection.execute(
            text(
                "INSERT INTO tickets (number, category, status, call_id, room, urgent, confirmed, major, recovered, "
                "created_at) VALUES ('2026120100001', 'repair', 'registered', :call, '1-1-101', false, true, false, "
                "false, :now) RETURNING id"
            ),
            {"call": call, **now},
        ).scalar_one()
        take = connection.execute(
            text(
                "INSERT INTO recordings (recording_sid, call_id, ticket_id, source, state, "
                "needs_manual_transcription, created_at) VALUES ('RE00000000000000000000000000000001', :call, "
                ":ticket, 'message', 'stored', false, :now) RETURNING id"
            ),
            {"call": call, "ticket": said, **now},
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO transcripts (recording_id, channel, text, raw_text, words, created_at) "
                "VALUES (:take, 0, '暖气不热', '暖气不热', '[]', :now)"
            ),
            {"take": take, **now},
        )
        connection.execute(
            text(
                "INSERT INTO ticket_notes (ticket_id, at, author, told_caller, text) "
                "VALUES (:ticket, :now, 'wang', false, '约明早上门')"
            ),
            {"ticket": said, **now},
        )
    upgrade_database(settings.database_url)
    assert listed(night, "?q=暖气") == listed(night, "?q=明早上门") == listed(night, "?q=1-1-101")
    assert listed(night, "?q=暖气") == numbers(database, [said])


def test_postgresql_reads_the_index_even_while_new_documents_wait_in_its_pending_list(settings, database):
    """A new install's first weeks: a small table whose GIN index still holds its new entries in the pending
    list must not tempt the planner into computing every document's n-grams row by row (0.17 ms each)."""
    if database.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's GIN index")
    from scripts.bench_console import seed

    seed(settings.database_url, 2000)  # bulk inserts, then ANALYZE: the index's entries wait in its pending list
    found, ticket_id = search_tickets(filtered_query({}), "吵", database.engine.dialect)
    statement = found.with_only_columns(Ticket.id).order_by(ticket_id.desc()).limit(1001)
    compiled = str(statement.compile(database.engine, compile_kwargs={"literal_binds": True}))
    with database.engine.connect() as connection:
        plan = "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + compiled))
    assert "search_docs_grams" in plan and "Seq Scan on search_docs" not in plan, plan


def test_postgresql_s_generic_plan_lowers_the_search_pattern_once(database):
    """psycopg prepares a statement run often, and PostgreSQL may then plan it once for any words: the LIKE
    pattern must still be lower-cased once per search, not once per document."""
    if database.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's prepared statements")
    found, ticket_id = search_tickets(filtered_query({"status": "closed"}), "漏水了", database.engine.dialect)
    compiled = found.with_only_columns(Ticket.id).order_by(ticket_id.desc()).limit(1001).compile(database.engine)
    sql, values = str(compiled), list(compiled.params.values())
    for number, name in enumerate(compiled.params, 1):
        sql = sql.replace(f"%({name})s", f"${number}")
    with database.engine.connect() as connection:
        connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        connection.exec_driver_sql(f"PREPARE search AS {sql}")
        literals = ", ".join(str(v) if isinstance(v, int) else "'" + str(v).replace("'", "''") + "'" for v in values)
        explain = f"EXPLAIN EXECUTE search({literals})".replace("%", "%%")  # no placeholders: % is itself
        plan = "\n".join(row[0] for row in connection.exec_driver_sql(explain))
    like = [line for line in plan.splitlines() if "~~" in line]
    assert like and not any("lower(" in line for line in like), plan
