"""a console that stays fast: the tickets' clocks as stored deadlines, the indexes the queue and overview need,
and search indexes over transcripts, notes and tickets that work for Chinese

The clocks (dispatch_due, resolve_due, follow_up_due, and the running clock sla_due / sla_warn_at) are filled
in for existing tickets here, in the property's time zone (IVR_TIMEZONE, default Asia/Shanghai); from now on
every write of a ticket stamps them (ivr.tickets.sla).

Search (ivr.tickets.search):
- SQLite: per source two FTS5 tables kept by triggers on the source table, so every writer (ORM, Core, a
  script) keeps them current: `search_<source>_tri` (trigram tokenizer: queries of 3+ characters) and
  `search_<source>_chars` (unicode61 over the text with a space between characters: a phrase of one or two
  characters, which trigram cannot match).
- PostgreSQL: GIN indexes over ivr_search_grams(text), the text's single characters and pairs of
  characters. pg_trgm is not used: its trigrams are built from the "word characters" of the database's
  LC_CTYPE, and under the C locale (the test server's, and many containers') Chinese characters are not word
  characters, so show_trgm('漏水了') is empty and a trgm index matches every row; nor can it serve a query
  shorter than three characters. The n-gram array serves 1, 2 and 3+ characters under any locale, and
  PostgreSQL keeps the index current itself.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 10:00:00
"""

import os
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa
import ivr.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

CLOCK_COLUMNS = ('dispatch_due', 'resolve_due', 'follow_up_due', 'sla_due', 'sla_warn_at')

# source name → (table, indexed columns); the names are the SQL the triggers copy.
SEARCH_SOURCES = {
    'transcripts': ('transcripts', ('text', 'corrected_text')),
    'notes': ('ticket_notes', ('text',)),
    'tickets': ('tickets', ('number', 'room', 'caller_number', 'note')),
}


def _spaced(expression):
    """SQLite: the text with a space between its characters (unicode61 then makes each character a token)."""
    return (f"(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < length({expression})) "
            f"SELECT group_concat(substr({expression}, i, 1), ' ') FROM c)")


def _sqlite_search_ddl():
    statements = []
    for source, (table, columns) in SEARCH_SOURCES.items():
        tri, chars = f'search_{source}_tri', f'search_{source}_chars'
        names = ', '.join(columns)
        statements += [
            f"CREATE VIRTUAL TABLE {tri} USING fts5({names}, tokenize='trigram')",
            f"CREATE VIRTUAL TABLE {chars} USING fts5({names}, tokenize='unicode61')",
        ]
        new_tri = ', '.join(f'new.{c}' for c in columns)
        new_chars = ', '.join(_spaced(f'new.{c}') for c in columns)
        insert = (f"INSERT INTO {tri}(rowid, {names}) VALUES (new.id, {new_tri}); "
                  f"INSERT INTO {chars}(rowid, {names}) VALUES (new.id, {new_chars});")
        delete = f"DELETE FROM {tri} WHERE rowid = old.id; DELETE FROM {chars} WHERE rowid = old.id;"
        statements += [
            f"CREATE TRIGGER search_{source}_ai AFTER INSERT ON {table} BEGIN {insert} END",
            f"CREATE TRIGGER search_{source}_au AFTER UPDATE OF {names} ON {table} BEGIN {delete} {insert} END",
            f"CREATE TRIGGER search_{source}_ad AFTER DELETE ON {table} BEGIN {delete} END",
            f"INSERT INTO {tri}(rowid, {names}) SELECT id, {names} FROM {table}",
            f"INSERT INTO {chars}(rowid, {names}) SELECT id, "
            + ', '.join(_spaced(c) for c in columns) + f" FROM {table}",
        ]
    return statements


POSTGRES_SEARCH_DDL = [
    # Every character and every pair of neighbouring characters of the (lower-cased) text.
    """CREATE OR REPLACE FUNCTION ivr_search_grams(body text) RETURNS text[]
       LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
         SELECT coalesce(array_agg(DISTINCT gram), '{}') FROM (
           SELECT substr(lower(body), i, 1) AS gram FROM generate_series(1, char_length(body)) AS i
           UNION ALL
           SELECT substr(lower(body), i, 2) FROM generate_series(1, char_length(body) - 1) AS i
         ) AS grams
       $$""",
    # What a query needs present: its character (one), else its pairs (fewer, rarer posting lists).
    """CREATE OR REPLACE FUNCTION ivr_search_query_grams(query text) RETURNS text[]
       LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
         SELECT CASE WHEN char_length(query) = 1 THEN ARRAY[lower(query)]
                ELSE ARRAY(SELECT DISTINCT substr(lower(query), i, 2)
                           FROM generate_series(1, char_length(query) - 1) AS i) END
       $$""",
    "CREATE INDEX search_transcripts_grams ON transcripts USING gin "
    "(ivr_search_grams(coalesce(text, '') || ' ' || coalesce(corrected_text, '')))",
    "CREATE INDEX search_notes_grams ON ticket_notes USING gin (ivr_search_grams(text))",
    "CREATE INDEX search_tickets_grams ON tickets USING gin (ivr_search_grams(number || ' ' || "
    "coalesce(room, '') || ' ' || coalesce(caller_number, '') || ' ' || coalesce(note, '')))",
]


def _end_of_local_day(moment, zone):
    local = moment.astimezone(zone)
    return datetime.combine(local.date() + timedelta(days=1), time.min, tzinfo=zone) - timedelta(microseconds=1)


def _stamp_existing_tickets(bind):
    """The same deadlines as ivr.tickets.sla.stamp_clocks, for the tickets already there."""
    zone = ZoneInfo(os.environ.get('IVR_TIMEZONE') or 'Asia/Shanghai')
    tickets = sa.table('tickets', sa.column('id', sa.Integer()), sa.column('status', sa.String()),
                       sa.column('call_id', sa.Integer()), sa.column('created_at', ivr.db.UTCDateTime()),
                       sa.column('resolved_at', ivr.db.UTCDateTime()),
                       *(sa.column(name, ivr.db.UTCDateTime()) for name in CLOCK_COLUMNS))
    calls = sa.table('calls', sa.column('id', sa.Integer()), sa.column('started_at', ivr.db.UTCDateTime()))
    rows = bind.execute(
        sa.select(tickets.c.id, tickets.c.status, tickets.c.created_at, tickets.c.resolved_at, calls.c.started_at)
        .select_from(tickets.outerjoin(calls, calls.c.id == tickets.c.call_id))
    ).all()
    warnings = {'dispatch': timedelta(minutes=15), 'resolve': timedelta(hours=2), 'follow_up': timedelta(days=1)}
    updates = []
    for ticket_id, status, created_at, resolved_at, started_at in rows:
        start = started_at or created_at or datetime.now(UTC)
        due = {
            'dispatch': start + timedelta(hours=1),
            'resolve': _end_of_local_day(start, zone),
            'follow_up': resolved_at + timedelta(days=7) if resolved_at else None,
        }
        running = None
        if status == 'registered':
            running = 'dispatch'
        elif status in ('dispatched', 'in_progress', 'analysed'):
            running = 'resolve'
        elif status in ('resolved', 'replied') and resolved_at is not None:
            running = 'follow_up'
        updates.append({
            'ticket_id': ticket_id,
            'dispatch_due': due['dispatch'],
            'resolve_due': due['resolve'],
            'follow_up_due': due['follow_up'],
            'sla_due': due[running] if running else None,
            'sla_warn_at': due[running] - warnings[running] if running else None,
        })
    if updates:
        bind.execute(
            tickets.update().where(tickets.c.id == sa.bindparam('ticket_id'))
            .values({name: sa.bindparam(name) for name in CLOCK_COLUMNS}),
            updates,
        )


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        for name in CLOCK_COLUMNS:
            batch_op.add_column(sa.Column(name, ivr.db.UTCDateTime(), nullable=True))
    bind = op.get_bind()
    _stamp_existing_tickets(bind)
    op.create_index('ix_tickets_open_queue', 'tickets', ['urgent', 'sla_due', 'sla_warn_at', 'category', 'status'],
                    unique=False, sqlite_where=sa.text("status <> 'closed'"),
                    postgresql_where=sa.text("status <> 'closed'"))
    op.create_index('ix_tickets_status_created_at', 'tickets', ['status', 'created_at'], unique=False)
    if bind.dialect.name == 'sqlite':
        for statement in _sqlite_search_ddl():
            op.execute(statement)
    elif bind.dialect.name == 'postgresql':
        for statement in POSTGRES_SEARCH_DDL:
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        for source in SEARCH_SOURCES:
            for suffix in ('ai', 'au', 'ad'):
                op.execute(f'DROP TRIGGER IF EXISTS search_{source}_{suffix}')
            op.execute(f'DROP TABLE IF EXISTS search_{source}_tri')
            op.execute(f'DROP TABLE IF EXISTS search_{source}_chars')
    elif bind.dialect.name == 'postgresql':
        for index in ('search_transcripts_grams', 'search_notes_grams', 'search_tickets_grams'):
            op.execute(f'DROP INDEX IF EXISTS {index}')
        op.execute('DROP FUNCTION IF EXISTS ivr_search_query_grams(text)')
        op.execute('DROP FUNCTION IF EXISTS ivr_search_grams(text)')
    op.drop_index('ix_tickets_status_created_at', table_name='tickets')
    op.drop_index('ix_tickets_open_queue', table_name='tickets')
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not batch mode: recreating tickets would drop a table
    # that recordings, notes and events refer to.
    for name in reversed(CLOCK_COLUMNS):
        op.execute(f'ALTER TABLE tickets DROP COLUMN {name}')
