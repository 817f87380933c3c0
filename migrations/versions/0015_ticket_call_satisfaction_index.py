"""index the tickets that got a score at the end of their inbound call, for the weekly follow-up report

A partial index (only scored tickets) carrying what the report reads, so a week's scores come from the index.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-15 10:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

SCORED = "call_satisfaction IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        'ix_tickets_call_satisfaction',
        'tickets',
        ['created_at', 'property_id', 'department', 'call_satisfaction'],
        unique=False,
        sqlite_where=sa.text(SCORED),
        postgresql_where=sa.text(SCORED),
    )


def downgrade() -> None:
    op.drop_index('ix_tickets_call_satisfaction', table_name='tickets')
