"""search pages newest first: one search document per ticket, keyed by the ticket's id

Migration 0006 indexed each source apart (message takes' transcripts, notes, the ticket's own columns), so a
search turned every match into its ticket (a join through recordings for each transcript found: 15,000 of them
for a common phrase) and sorted and counted them all before showing fifty. Here each ticket has one search
document — its number, room, caller's number and note, what was said in its message takes (machine and
corrected text) and its notes, one text per line — whose key is the ticket's id: a search reads the found
tickets' ids straight from the index, newest first, and stops when the page (or the count's cap) is full.

- SQLite: `search_docs_tri` (FTS5, trigram tokenizer: queries of 3+ characters) and `search_docs_chars`
  (unicode61 over the document with a space between characters: a phrase of 1-2 characters), rowid = ticket id.
  A line break becomes the token BREAK in the second, so that a phrase never runs from one text into the next.
- PostgreSQL: the table `search_docs` (ticket_id, body lower-cased) with a GIN index over ivr_search_grams(body)
  (migration 0006's function: characters and pairs of characters).

Both are kept by triggers on tickets, recordings, transcripts and ticket_notes, so every writer (ORM, Core, a
script) keeps search current; a trigger rebuilds the ticket's whole document. 0006's per-source indexes and
triggers are dropped (the downgrade makes them again).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 10:00:00
"""

import importlib.util
from pathlib import Path

from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BREAK = 'zzbreakzz'  # one token of many characters: a query's single-character tokens never match it

# SQLite -------------------------------------------------------------------------------------------------------

_SQLITE_BODY = (
    "tickets.number || char(10) || coalesce(tickets.room, '') || char(10) || coalesce(tickets.caller_number, '') "
    "|| char(10) || coalesce(tickets.note, '') "
    "|| coalesce(char(10) || (SELECT group_concat(coalesce(transcripts.text, '') || char(10) "
    "|| coalesce(transcripts.corrected_text, ''), char(10)) FROM recordings "
    "JOIN transcripts ON transcripts.recording_id = recordings.id "
    "WHERE recordings.ticket_id = tickets.id AND recordings.source = 'message'), '') "
    "|| coalesce(char(10) || (SELECT group_concat(ticket_notes.text, char(10)) FROM ticket_notes "
    "WHERE ticket_notes.ticket_id = tickets.id), '')"
)


def _sqlite_chars(expression):
    """The text with a space between its characters (unicode61 then makes each a token), line breaks as BREAK."""
    spaced = (f"(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < length({expression})) "
              f"SELECT group_concat(substr({expression}, i, 1), ' ') FROM c)")
    return f"replace({spaced}, char(10), '{BREAK}')"


def _sqlite_refresh(ticket_id):
    """Statements that rebuild one ticket's documents (none when the ticket is gone or `ticket_id` is NULL)."""
    return (
        f"DELETE FROM search_docs_tri WHERE rowid = {ticket_id}; "
        f"DELETE FROM search_docs_chars WHERE rowid = {ticket_id}; "
        f"INSERT INTO search_docs_tri(rowid, body) SELECT tickets.id, {_SQLITE_BODY} FROM tickets "
        f"WHERE tickets.id = {ticket_id}; "
        f"INSERT INTO search_docs_chars(rowid, body) SELECT rowid, {_sqlite_chars('body')} FROM search_docs_tri "
        f"WHERE rowid = {ticket_id};"
    )


def _take_ticket(row):
    """The ticket of a transcript's recording when it is a message take (NULL otherwise: transfers are not searched)."""
    return f"(SELECT ticket_id FROM recordings WHERE id = {row}.recording_id AND source = 'message')"


# trigger name → (when it fires, the ticket whose documents it rebuilds)
_SQLITE_TRIGGERS = {
    'search_docs_tickets_ai': ('AFTER INSERT ON tickets', 'new.id'),
    'search_docs_tickets_au': ('AFTER UPDATE OF number, room, caller_number, note ON tickets', 'new.id'),
    'search_docs_tickets_ad': ('AFTER DELETE ON tickets', 'old.id'),  # the ticket is gone: no documents
    'search_docs_recordings_au': ('AFTER UPDATE OF ticket_id, source ON recordings', 'new.ticket_id'),
    'search_docs_recordings_moved': (
        'AFTER UPDATE OF ticket_id ON recordings WHEN old.ticket_id IS NOT new.ticket_id', 'old.ticket_id'
    ),
    'search_docs_recordings_ad': ('AFTER DELETE ON recordings', 'old.ticket_id'),
    'search_docs_transcripts_ai': ('AFTER INSERT ON transcripts', _take_ticket('new')),
    'search_docs_transcripts_au': (
        'AFTER UPDATE OF text, corrected_text, recording_id ON transcripts', _take_ticket('new')
    ),
    'search_docs_transcripts_moved': (
        'AFTER UPDATE OF recording_id ON transcripts WHEN old.recording_id IS NOT new.recording_id',
        _take_ticket('old'),
    ),
    'search_docs_transcripts_ad': ('AFTER DELETE ON transcripts', _take_ticket('old')),
    'search_docs_notes_ai': ('AFTER INSERT ON ticket_notes', 'new.ticket_id'),
    'search_docs_notes_au': ('AFTER UPDATE OF text, ticket_id ON ticket_notes', 'new.ticket_id'),
    'search_docs_notes_moved': (
        'AFTER UPDATE OF ticket_id ON ticket_notes WHEN old.ticket_id IS NOT new.ticket_id', 'old.ticket_id'
    ),
    'search_docs_notes_ad': ('AFTER DELETE ON ticket_notes', 'old.ticket_id'),
}


def _sqlite_upgrade():
    for statement in (
        "CREATE VIRTUAL TABLE search_docs_tri USING fts5(body, tokenize='trigram')",
        "CREATE VIRTUAL TABLE search_docs_chars USING fts5(body, tokenize='unicode61')",
        f"INSERT INTO search_docs_tri(rowid, body) SELECT tickets.id, {_SQLITE_BODY} FROM tickets",
        f"INSERT INTO search_docs_chars(rowid, body) SELECT rowid, {_sqlite_chars('body')} FROM search_docs_tri",
        *(
            f"CREATE TRIGGER {name} {event} BEGIN {_sqlite_refresh(ticket)} END"
            for name, (event, ticket) in _SQLITE_TRIGGERS.items()
        ),
    ):
        op.execute(statement)
    for source in OLD_SOURCES:
        for suffix in ('ai', 'au', 'ad'):
            op.execute(f'DROP TRIGGER search_{source}_{suffix}')
        op.execute(f'DROP TABLE search_{source}_tri')
        op.execute(f'DROP TABLE search_{source}_chars')


def _sqlite_downgrade():
    for name in _SQLITE_TRIGGERS:
        op.execute(f'DROP TRIGGER IF EXISTS {name}')
    op.execute('DROP TABLE IF EXISTS search_docs_tri')
    op.execute('DROP TABLE IF EXISTS search_docs_chars')
    for statement in _migration_0006()._sqlite_search_ddl():
        op.execute(statement)


# PostgreSQL ---------------------------------------------------------------------------------------------------

# One ticket's document (of the row `tickets`), lower-cased once here so that LIKE on it needs no lower() per row
# (ivr_search_grams lower-cases too); concat_ws leaves out what is NULL.
_POSTGRES_BODY = """lower(concat_ws(E'\\n', tickets.number, tickets.room, tickets.caller_number, tickets.note,
    (SELECT string_agg(concat_ws(E'\\n', transcripts.text, transcripts.corrected_text), E'\\n' ORDER BY transcripts.id)
       FROM recordings JOIN transcripts ON transcripts.recording_id = recordings.id
      WHERE recordings.ticket_id = tickets.id AND recordings.source = 'message'),
    (SELECT string_agg(ticket_notes.text, E'\\n' ORDER BY ticket_notes.id)
       FROM ticket_notes WHERE ticket_notes.ticket_id = tickets.id)))"""

POSTGRES_UPGRADE = [
    # Every ticket is read and indexed once: longer than the app's statement timeout on a year of tickets.
    "SET LOCAL statement_timeout = 0",
    "SET LOCAL maintenance_work_mem = '256MB'",
    "CREATE TABLE search_docs (ticket_id integer NOT NULL, body text NOT NULL, "
    "CONSTRAINT search_docs_pkey PRIMARY KEY (ticket_id), "
    "CONSTRAINT search_docs_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES tickets (id) ON DELETE CASCADE)",
    """CREATE FUNCTION ivr_search_docs_refresh(ticket integer) RETURNS void LANGUAGE plpgsql AS $$
       BEGIN
         IF ticket IS NULL THEN
           RETURN;
         END IF;
         -- The document's row is locked before its texts are read, by a statement of its own (so with a fresh
         -- snapshot under READ COMMITTED): two transactions adding a take and a note to one ticket cannot each
         -- write a body that lacks the other's text.
         PERFORM 1 FROM search_docs WHERE ticket_id = ticket FOR UPDATE;
         INSERT INTO search_docs (ticket_id, body) SELECT tickets.id, """ + _POSTGRES_BODY + """
           FROM tickets WHERE tickets.id = ticket
         ON CONFLICT (ticket_id) DO UPDATE SET body = excluded.body WHERE search_docs.body IS DISTINCT FROM excluded.body;
       END $$""",
    """CREATE FUNCTION ivr_search_docs_from_tickets() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         PERFORM ivr_search_docs_refresh(NEW.id);
         RETURN NULL;
       END $$""",
    """CREATE FUNCTION ivr_search_docs_from_notes() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP <> 'INSERT' THEN
           PERFORM ivr_search_docs_refresh(OLD.ticket_id);
         END IF;
         IF TG_OP = 'INSERT' THEN
           PERFORM ivr_search_docs_refresh(NEW.ticket_id);
         ELSIF TG_OP = 'UPDATE' THEN
           IF NEW.ticket_id IS DISTINCT FROM OLD.ticket_id THEN
             PERFORM ivr_search_docs_refresh(NEW.ticket_id);
           END IF;
         END IF;
         RETURN NULL;
       END $$""",
    # recordings: a take moved to another ticket, or no longer a message (or gone).
    """CREATE FUNCTION ivr_search_docs_from_recordings() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         PERFORM ivr_search_docs_refresh(OLD.ticket_id);
         IF TG_OP = 'UPDATE' THEN
           IF NEW.ticket_id IS DISTINCT FROM OLD.ticket_id THEN
             PERFORM ivr_search_docs_refresh(NEW.ticket_id);
           END IF;
         END IF;
         RETURN NULL;
       END $$""",
    # transcripts: only a message take's count (transfers are scored by QA, not searched).
    """CREATE FUNCTION ivr_search_docs_from_transcripts() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE
         old_ticket integer;
         new_ticket integer;
       BEGIN
         IF TG_OP <> 'INSERT' THEN
           SELECT ticket_id INTO old_ticket FROM recordings WHERE id = OLD.recording_id AND source = 'message';
           PERFORM ivr_search_docs_refresh(old_ticket);
         END IF;
         IF TG_OP <> 'DELETE' THEN
           SELECT ticket_id INTO new_ticket FROM recordings WHERE id = NEW.recording_id AND source = 'message';
           IF new_ticket IS DISTINCT FROM old_ticket THEN
             PERFORM ivr_search_docs_refresh(new_ticket);
           END IF;
         END IF;
         RETURN NULL;
       END $$""",
    "CREATE TRIGGER search_docs_tickets AFTER INSERT OR UPDATE OF number, room, caller_number, note ON tickets "
    "FOR EACH ROW EXECUTE FUNCTION ivr_search_docs_from_tickets()",
    "CREATE TRIGGER search_docs_notes AFTER INSERT OR UPDATE OF text, ticket_id OR DELETE ON ticket_notes "
    "FOR EACH ROW EXECUTE FUNCTION ivr_search_docs_from_notes()",
    "CREATE TRIGGER search_docs_recordings AFTER UPDATE OF ticket_id, source OR DELETE ON recordings "
    "FOR EACH ROW EXECUTE FUNCTION ivr_search_docs_from_recordings()",
    "CREATE TRIGGER search_docs_transcripts AFTER INSERT OR UPDATE OF text, corrected_text, recording_id OR DELETE "
    "ON transcripts FOR EACH ROW EXECUTE FUNCTION ivr_search_docs_from_transcripts()",
    f"INSERT INTO search_docs (ticket_id, body) SELECT tickets.id, {_POSTGRES_BODY} FROM tickets",
    "CREATE INDEX search_docs_grams ON search_docs USING gin (ivr_search_grams(body))",
    # The n-grams of one document take about 0.17 ms to compute, a thousand times the planner's default for a
    # function: told so, it never scans the documents computing them row by row instead of reading the index
    # (which it did on a small table whose index had new entries still in its pending list: 2,000 tickets,
    # 336 ms a search rather than 0.4).
    "ALTER FUNCTION ivr_search_grams(text) COST 10000",
    "DROP INDEX search_transcripts_grams",
    "DROP INDEX search_notes_grams",
    "DROP INDEX search_tickets_grams",
]

POSTGRES_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS search_docs_tickets ON tickets",
    "DROP TRIGGER IF EXISTS search_docs_notes ON ticket_notes",
    "DROP TRIGGER IF EXISTS search_docs_recordings ON recordings",
    "DROP TRIGGER IF EXISTS search_docs_transcripts ON transcripts",
    "DROP FUNCTION IF EXISTS ivr_search_docs_from_tickets()",
    "DROP FUNCTION IF EXISTS ivr_search_docs_from_notes()",
    "DROP FUNCTION IF EXISTS ivr_search_docs_from_recordings()",
    "DROP FUNCTION IF EXISTS ivr_search_docs_from_transcripts()",
    "DROP FUNCTION IF EXISTS ivr_search_docs_refresh(integer)",
    "DROP TABLE IF EXISTS search_docs",
    "ALTER FUNCTION ivr_search_grams(text) COST 100",
]

OLD_SOURCES = ('transcripts', 'notes', 'tickets')


def _migration_0006():
    """Migration 0006's module, whose search DDL the downgrade makes again."""
    path = Path(__file__).with_name('0006_console_at_scale.py')
    spec = importlib.util.spec_from_file_location('ivr_migration_0006', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        _sqlite_upgrade()
    elif dialect == 'postgresql':
        for statement in POSTGRES_UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        _sqlite_downgrade()
    elif dialect == 'postgresql':
        for statement in POSTGRES_DOWNGRADE:
            op.execute(statement)
        # 0006's functions stay (only its indexes were dropped): the indexes alone are made again.
        for statement in _migration_0006().POSTGRES_SEARCH_DDL:
            if statement.startswith('CREATE INDEX'):
                op.execute(statement)
