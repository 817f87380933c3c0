"""one call-back under way per ticket: a partial unique index over the call-backs still queued or ringing

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-14 10:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

UNDER_WAY = "state IN ('queued', 'calling_staff', 'calling_resident')"


def upgrade() -> None:
    op.create_index(
        'uq_call_backs_under_way',
        'call_backs',
        ['ticket_id'],
        unique=True,
        sqlite_where=sa.text(UNDER_WAY),
        postgresql_where=sa.text(UNDER_WAY),
    )


def downgrade() -> None:
    op.drop_index('uq_call_backs_under_way', table_name='call_backs')
