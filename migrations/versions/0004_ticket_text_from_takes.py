"""a ticket's text is derived from its message takes: tickets.transcript and tickets.corrected_transcript go

A correction made on the ticket page moves to the take the ticket's text came from (the latest message take
with machine text, else the latest take), as that take's corrected text; a ticket with no message take keeps
it as an internal note.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:00:00
"""

from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa
import ivr.db


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

tickets = sa.table('tickets', sa.column('id', sa.Integer()), sa.column('transcript', sa.Text()),
                   sa.column('corrected_transcript', sa.Text()))
recordings = sa.table('recordings', sa.column('id', sa.Integer()), sa.column('ticket_id', sa.Integer()),
                      sa.column('source', sa.String()))
transcripts = sa.table('transcripts', sa.column('id', sa.Integer()), sa.column('recording_id', sa.Integer()),
                       sa.column('channel', sa.Integer()), sa.column('text', sa.Text()),
                       sa.column('raw_text', sa.Text()), sa.column('words', sa.JSON()),
                       sa.column('created_at', ivr.db.UTCDateTime()), sa.column('corrected_text', sa.Text()),
                       sa.column('corrected_by', sa.String()))
ticket_events = sa.table('ticket_events', sa.column('id', sa.Integer()), sa.column('ticket_id', sa.Integer()),
                         sa.column('kind', sa.String()), sa.column('actor', sa.String()))
ticket_notes = sa.table('ticket_notes', sa.column('ticket_id', sa.Integer()), sa.column('at', ivr.db.UTCDateTime()),
                        sa.column('author', sa.String()), sa.column('told_caller', sa.Boolean()),
                        sa.column('text', sa.Text()))


def _message_takes(bind, ticket_id):
    """(recording id, its channel-0 transcript row or None), newest take first."""
    takes = bind.execute(sa.select(recordings.c.id).where(recordings.c.ticket_id == ticket_id,
                                                         recordings.c.source == 'message')
                         .order_by(recordings.c.id.desc())).scalars().all()
    return [(take, bind.execute(sa.select(transcripts.c.id, transcripts.c.text, transcripts.c.corrected_text)
                                .where(transcripts.c.recording_id == take, transcripts.c.channel == 0)).first())
            for take in takes]


def upgrade() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    corrected = bind.execute(sa.select(tickets.c.id, tickets.c.corrected_transcript)
                             .where(tickets.c.corrected_transcript.is_not(None),
                                    tickets.c.corrected_transcript != '')).all()
    for ticket_id, text in corrected:
        who = bind.execute(sa.select(ticket_events.c.actor).where(ticket_events.c.ticket_id == ticket_id,
                                                                  ticket_events.c.kind == 'transcript_corrected')
                           .order_by(ticket_events.c.id.desc()).limit(1)).scalar() or '系统'
        takes = _message_takes(bind, ticket_id)
        target = next(((take, row) for take, row in takes if row is not None and row.text), None)
        if target is None and takes:
            target = takes[0]
        if target is None:
            bind.execute(ticket_notes.insert().values(ticket_id=ticket_id, at=now, author=who, told_caller=False,
                                                      text=f'人工转写:{text}'))
        elif target[1] is None:
            bind.execute(transcripts.insert().values(recording_id=target[0], channel=0, text='', raw_text='',
                                                     words=[], created_at=now, corrected_text=text,
                                                     corrected_by=who))
        else:
            bind.execute(transcripts.update().where(transcripts.c.id == target[1].id)
                         .values(corrected_text=text, corrected_by=who))
    # ALTER TABLE … DROP COLUMN in place (SQLite 3.35+): copying the table, batch mode's way, would have to
    # drop it, which SQLite refuses while other tables' rows point at its rows.
    with op.batch_alter_table('tickets', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('corrected_transcript')
        batch_op.drop_column('transcript')


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('transcript', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('corrected_transcript', sa.Text(), nullable=True))
    bind = op.get_bind()
    for ticket_id in bind.execute(sa.select(tickets.c.id)).scalars().all():
        source = next((row for _, row in _message_takes(bind, ticket_id)
                       if row is not None and (row.corrected_text or row.text)), None)
        if source is not None:
            bind.execute(tickets.update().where(tickets.c.id == ticket_id)
                         .values(transcript=source.text or None, corrected_transcript=source.corrected_text))
