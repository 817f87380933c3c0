"""idempotency tokens scoped to call and endpoint; session versions; token expiry; audit events; refused log-ins

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:20:00
"""

from alembic import op
import sqlalchemy as sa
import ivr.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('call_events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_call_events_idempotency_token', type_='unique')
        batch_op.create_unique_constraint('uq_call_events_call_endpoint_token',
                                          ['call_id', 'endpoint', 'idempotency_token'])
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', ivr.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('service', sa.Boolean(), nullable=False, server_default=sa.false()))
    # Tokens made before without a user were service tokens in all but name.
    op.execute("UPDATE api_tokens SET service = true WHERE user_id IS NULL")
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refused', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index('ix_login_attempts_remote_addr_at', ['remote_addr', 'at'], unique=False)
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', ivr.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.Column('recording_sid', sa.String(length=64), nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('remote_addr', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_audit_events_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], name=op.f('fk_audit_events_token_id_api_tokens'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_audit_events_ticket_id_tickets'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index('ix_audit_events_recording_sid_at', ['recording_sid', 'at'], unique=False)
        batch_op.create_index('ix_audit_events_actor_at', ['actor', 'at'], unique=False)


def downgrade() -> None:
    op.drop_table('audit_events')
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempts_remote_addr_at')
        batch_op.drop_column('refused')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('service')
        batch_op.drop_column('expires_at')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
    with op.batch_alter_table('call_events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_call_events_call_endpoint_token', type_='unique')
        batch_op.create_unique_constraint('uq_call_events_idempotency_token', ['idempotency_token'])
