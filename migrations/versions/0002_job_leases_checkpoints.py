"""job leases, longer retries, checkpoints, recovered tickets

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:10:00
"""

from alembic import op
import sqlalchemy as sa
import ivr.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', ivr.db.UTCDateTime(timezone=True), nullable=True))
    # Jobs still in play get the day-long retry budget too.
    op.execute("UPDATE jobs SET max_attempts = 60 WHERE state IN ('queued', 'running')")
    op.create_table('checkpoints',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('at', ivr.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_checkpoints'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recovered', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('recovered')
    op.drop_table('checkpoints')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('owner')
