"""index follow-ups by when they became due (created), for the weekly follow-up report and the overview's
本周待回访, which count a week's follow-ups

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-13 10:00:00
"""

from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_follow_ups_created_at', 'follow_ups', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_follow_ups_created_at', table_name='follow_ups')
