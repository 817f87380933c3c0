"""Search over what was said (message takes: machine and corrected text), notes, and the ticket's number, room,
caller and note, through the indexes of migration 0006 — fast on a year of tickets, and right for Chinese.

SQLite: FTS5 with the trigram tokenizer for 3+ characters; trigram cannot match one or two, so those go to a
second FTS5 table whose tokens are single characters (a phrase of adjacent characters). PostgreSQL: a GIN index
over each text's characters and character pairs (`ivr_search_grams`), then LIKE on the rows it finds. Both are
kept current by the database itself (triggers on SQLite), whoever writes.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Integer, TextualSelect, column, text
from sqlalchemy.engine import Dialect

from ivr.models import Ticket

TRIGRAM = 3  # the shortest query the trigram tokenizer matches


def _fts_phrase(words: str) -> str:
    return '"' + words.replace('"', '""') + '"'


def _like_pattern(words: str) -> str:
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _sqlite_matching_ids(words: str) -> TextualSelect | None:
    if len(words) >= TRIGRAM:
        kind, phrase = "tri", _fts_phrase(words)
    else:
        # unicode61 drops punctuation and spaces: what is left are the characters the table holds as tokens.
        characters = [character for character in words if character.isalnum()]
        if not characters:
            return None
        kind, phrase = "chars", _fts_phrase(" ".join(characters))
    return (
        text(
            f"SELECT recordings.ticket_id FROM recordings JOIN transcripts ON transcripts.recording_id = recordings.id "
            f"WHERE recordings.source = 'message' AND transcripts.id IN "
            f"(SELECT rowid FROM search_transcripts_{kind} WHERE search_transcripts_{kind} MATCH :phrase) "
            f"UNION SELECT ticket_notes.ticket_id FROM ticket_notes WHERE ticket_notes.id IN "
            f"(SELECT rowid FROM search_notes_{kind} WHERE search_notes_{kind} MATCH :phrase) "
            f"UNION SELECT rowid FROM search_tickets_{kind} WHERE search_tickets_{kind} MATCH :phrase"
        )
        .bindparams(phrase=phrase)
        .columns(column("ticket_id", Integer))
    )


# The expressions must be written exactly as the indexes of migration 0006 are.
_POSTGRES_MATCHING_IDS = text(
    "SELECT recordings.ticket_id FROM recordings JOIN transcripts ON transcripts.recording_id = recordings.id "
    "WHERE recordings.source = 'message' "
    "AND ivr_search_grams(coalesce(text, '') || ' ' || coalesce(corrected_text, '')) @> ivr_search_query_grams(:words) "
    "AND (transcripts.text LIKE :pattern ESCAPE '\\' OR transcripts.corrected_text LIKE :pattern ESCAPE '\\') "
    "UNION SELECT ticket_notes.ticket_id FROM ticket_notes "
    "WHERE ivr_search_grams(text) @> ivr_search_query_grams(:words) AND ticket_notes.text LIKE :pattern ESCAPE '\\' "
    "UNION SELECT tickets.id FROM tickets "
    "WHERE ivr_search_grams(number || ' ' || coalesce(room, '') || ' ' || coalesce(caller_number, '') || ' ' || "
    "coalesce(note, '')) @> ivr_search_query_grams(:words) "
    "AND (tickets.number LIKE :pattern ESCAPE '\\' OR tickets.room LIKE :pattern ESCAPE '\\' "
    "OR tickets.caller_number LIKE :pattern ESCAPE '\\' OR tickets.note LIKE :pattern ESCAPE '\\')"
)


def search_condition(words: str, dialect: Dialect) -> ColumnElement[bool]:
    """Tickets where the words occur in what was said in a message take (machine or corrected text), a note,
    the ticket's note, number, room or caller's number."""
    words = words.strip()
    if dialect.name == "postgresql":
        matching = _POSTGRES_MATCHING_IDS.bindparams(words=words, pattern=_like_pattern(words))
        return Ticket.id.in_(matching.columns(column("ticket_id", Integer)))
    found = _sqlite_matching_ids(words)
    return Ticket.id.in_(found) if found is not None else Ticket.id.is_(None)
