"""Search over what was said (message takes: machine and corrected text), notes, and the ticket's number, room,
caller and note, through the search documents of migration 0009: one per ticket, keyed by the ticket's id, so
the found tickets come straight from the index, newest first, and a page stops reading when it is full.

SQLite: FTS5 with the trigram tokenizer for 3+ characters; trigram cannot match one or two, so those go to a
second FTS5 table whose tokens are single characters (a phrase of adjacent characters); FTS5 hands its rowids
(the ticket ids) out in order. PostgreSQL: a GIN index over the document's characters and character pairs
(`ivr_search_grams`), then LIKE for 3+ characters (the pairs alone are exact for one or two); the found ids are
sorted before the join, so that a page joins only the tickets it shows. Both are kept current by triggers,
whoever writes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, Text, column, false, func, select, table
from sqlalchemy.engine import Dialect

from ivr.models import Ticket

TRIGRAM = 3  # the shortest query the trigram tokenizer matches
PAIRS_ARE_EXACT = 2  # PostgreSQL: a query this short is matched exactly by the document's characters and pairs

_SQLITE_TRI = table("search_docs_tri", column("rowid", Integer), column("body", Text))
_SQLITE_CHARS = table("search_docs_chars", column("rowid", Integer), column("body", Text))
_POSTGRES_DOCS = table("search_docs", column("ticket_id", Integer), column("body", Text))
_TICKET_ID: ColumnElement[int] = Ticket.__table__.c.id  # what a search that can find nothing orders by


def _fts_phrase(words: str) -> str:
    return '"' + words.replace('"', '""') + '"'


def _like_pattern(words: str) -> str:
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _sqlite_search(query: Select[Any], words: str) -> tuple[Select[Any], ColumnElement[int]]:
    if len(words) >= TRIGRAM:
        documents, phrase = _SQLITE_TRI, _fts_phrase(words)
    else:
        # unicode61 drops punctuation and spaces: what is left are the characters the table holds as tokens.
        characters = [character for character in words if character.isalnum()]
        if not characters:
            return query.where(false()), _TICKET_ID
        documents, phrase = _SQLITE_CHARS, _fts_phrase(" ".join(characters))
    # Joined, not `IN (...)`: SQLite reads the FTS table first, in rowid order, and looks each ticket up.
    found = query.join(documents, documents.c.rowid == Ticket.id).where(documents.c.body.match(phrase))
    return found, documents.c.rowid


def _postgres_search(query: Select[Any], words: str) -> tuple[Select[Any], ColumnElement[int]]:
    documents = _POSTGRES_DOCS
    # Written exactly as the index of migration 0009 is; the documents are lower-cased already.
    condition: ColumnElement[bool] = func.ivr_search_grams(documents.c.body).op("@>")(
        func.ivr_search_query_grams(words)
    )
    if len(words) > PAIRS_ARE_EXACT:
        # lower() in a sub-select: computed once, not for every row, when psycopg's prepared statement gets
        # PostgreSQL's generic plan (81 ms instead of 14 for 15,000 documents).
        pattern = select(func.lower(_like_pattern(words))).scalar_subquery()
        condition = condition & documents.c.body.like(pattern, escape="\\")
    # Sorted, and fenced by OFFSET 0 so that the planner keeps it apart: the join then takes the found ids in
    # order and stops at the page's LIMIT instead of joining every match and sorting afterwards.
    found = (
        documents.select()
        .with_only_columns(documents.c.ticket_id)
        .where(condition)
        .order_by(documents.c.ticket_id.desc())
        .offset(0)
        .subquery("found")
    )
    return query.join(found, found.c.ticket_id == Ticket.id), found.c.ticket_id


def search_tickets(query: Select[Any], words: str, dialect: Dialect) -> tuple[Select[Any], ColumnElement[int]]:
    """`query` (of tickets) narrowed to those whose words occur in what was said in a message take (machine or
    corrected text), a note, or the ticket's number, room, caller's number or note; and the found ticket's id
    as the index holds it: ordered by that, descending, the newest come first straight from the index."""
    words = words.strip()
    if not words:
        return query.where(false()), _TICKET_ID
    if dialect.name == "postgresql":
        return _postgres_search(query, words)
    return _sqlite_search(query, words)
