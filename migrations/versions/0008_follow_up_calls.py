"""follow-up calls (回访): each resolved ticket's follow-up with its attempts and answers, and the phones that
asked for no more follow-up calls (kept by property and phone, not on the resident registry's rows)

New tables only: nothing that exists is rebuilt.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import ivr.db


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'follow_ups',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('property_id', sa.Integer(), server_default='1', nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=True),
        sa.Column(
            'state',
            sa.Enum('scheduled', 'calling', 'done', 'unreachable', 'opted_out', 'cancelled',
                    name='followupstate', native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('due_at', ivr.db.UTCDateTime(), nullable=False),
        sa.Column('last_attempt_at', ivr.db.UTCDateTime(), nullable=True),
        sa.Column('last_outcome', sa.String(length=32), nullable=True),
        sa.Column('call_sid', sa.String(length=64), nullable=True),
        sa.Column('resolved', sa.Boolean(), nullable=True),
        sa.Column('satisfaction', sa.Integer(), nullable=True),
        sa.Column('answered_at', ivr.db.UTCDateTime(), nullable=True),
        sa.Column('comment_recording_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('created_at', ivr.db.UTCDateTime(), nullable=False),
        sa.Column('updated_at', ivr.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['comment_recording_id'], ['recordings.id'],
                                name=op.f('fk_follow_ups_comment_recording_id_recordings'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_follow_ups_property_id_properties')),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_follow_ups_ticket_id_tickets'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_follow_ups')),
    )
    op.create_index(op.f('ix_follow_ups_call_sid'), 'follow_ups', ['call_sid'], unique=False)
    op.create_index(op.f('ix_follow_ups_property_id'), 'follow_ups', ['property_id'], unique=False)
    op.create_index(op.f('ix_follow_ups_ticket_id'), 'follow_ups', ['ticket_id'], unique=False)
    op.create_index('ix_follow_ups_state_due_at', 'follow_ups', ['state', 'due_at'], unique=False)
    op.create_table(
        'follow_up_opt_outs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('property_id', sa.Integer(), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=False),
        sa.Column('opted_out_at', ivr.db.UTCDateTime(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=True),
        sa.Column('call_sid', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['property_id'], ['properties.id'],
                                name=op.f('fk_follow_up_opt_outs_property_id_properties'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_follow_up_opt_outs_ticket_id_tickets'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_follow_up_opt_outs')),
        sa.UniqueConstraint('property_id', 'phone', name='uq_follow_up_opt_outs_property_phone'),
    )


def downgrade() -> None:
    op.drop_table('follow_up_opt_outs')
    op.drop_index('ix_follow_ups_state_due_at', table_name='follow_ups')
    op.drop_index(op.f('ix_follow_ups_ticket_id'), table_name='follow_ups')
    op.drop_index(op.f('ix_follow_ups_property_id'), table_name='follow_ups')
    op.drop_index(op.f('ix_follow_ups_call_sid'), table_name='follow_ups')
    op.drop_table('follow_ups')
