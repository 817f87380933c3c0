"""staff call-backs from the console (回拨), and the satisfaction question at the end of inbound calls

A new table, and plain add_column of columns with server defaults or nullable, without batch mode: SQLite adds
them in place, so neither tickets (whose search triggers a rebuild would drop) nor properties are rebuilt.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-12 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import ivr.db


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('properties', sa.Column('ask_satisfaction', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column('tickets', sa.Column('call_satisfaction', sa.Integer(), nullable=True))
    op.create_table(
        'call_backs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('property_id', sa.Integer(), server_default='1', nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('staff_phone', sa.String(length=32), nullable=False),
        sa.Column('resident_phone', sa.String(length=32), nullable=False),
        sa.Column('outside_window', sa.Boolean(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column(
            'state',
            sa.Enum('queued', 'calling_staff', 'calling_resident', 'done', 'failed',
                    name='callbackstate', native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column('outcome', sa.Text(), nullable=True),
        sa.Column('call_sid', sa.String(length=64), nullable=True),
        sa.Column('call_id', sa.Integer(), nullable=True),
        sa.Column('created_at', ivr.db.UTCDateTime(), nullable=False),
        sa.Column('updated_at', ivr.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_call_backs_call_id_calls'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_call_backs_property_id_properties')),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_call_backs_ticket_id_tickets'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_call_backs_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_call_backs')),
        sa.UniqueConstraint('call_sid', name=op.f('uq_call_backs_call_sid')),
    )
    op.create_index(op.f('ix_call_backs_call_id'), 'call_backs', ['call_id'], unique=False)
    op.create_index(op.f('ix_call_backs_property_id'), 'call_backs', ['property_id'], unique=False)
    op.create_index(op.f('ix_call_backs_ticket_id'), 'call_backs', ['ticket_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_call_backs_ticket_id'), table_name='call_backs')
    op.drop_index(op.f('ix_call_backs_property_id'), table_name='call_backs')
    op.drop_index(op.f('ix_call_backs_call_id'), table_name='call_backs')
    op.drop_table('call_backs')
    # SQLite (3.35 and later) drops a column in place too
    op.drop_column('tickets', 'call_satisfaction')
    op.drop_column('properties', 'ask_satisfaction')
