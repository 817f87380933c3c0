"""an index on the tickets' caller number: the ticket page shows the caller's other tickets (来电弹屏), which
without it reads every ticket of the property

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 10:00:00
"""

from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f('ix_tickets_caller_number'), 'tickets', ['caller_number'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_tickets_caller_number'), table_name='tickets')
