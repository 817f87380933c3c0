"""each property's own follow-up call windows and days off (None: IVR_CALL_WINDOWS / IVR_CALL_DAYS_OFF)

Plain add_column of nullable columns, without batch mode: SQLite adds them in place, so the properties table
(which the property numbers reference) is not rebuilt.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-11 10:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('properties', sa.Column('call_windows', sa.Text(), nullable=True))
    op.add_column('properties', sa.Column('call_days_off', sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite (3.35 and later) drops a column in place too
    op.drop_column('properties', 'call_days_off')
    op.drop_column('properties', 'call_windows')
