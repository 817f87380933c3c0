"""live transcripts: what the line heard while the caller recorded (Media Streams into Vosk)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import ivr.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'live_transcripts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('recording_id', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('raw_text', sa.Text(), nullable=False),
        sa.Column('words', sa.JSON(), nullable=False),
        sa.Column('duration', sa.Double(), nullable=True),
        sa.Column('mean_confidence', sa.Double(), nullable=True),
        sa.Column('model', sa.String(length=128), nullable=True),
        sa.Column('created_at', ivr.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'],
                                name=op.f('fk_live_transcripts_recording_id_recordings'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_live_transcripts')),
        sa.UniqueConstraint('recording_id', name=op.f('uq_live_transcripts_recording_id')),
    )


def downgrade() -> None:
    op.drop_table('live_transcripts')
