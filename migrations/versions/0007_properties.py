"""properties: one line for many 小区, the residents it knows, staff by property

The default property (id 1, code "default") is made here and everything that exists belongs to it: calls,
tickets, the fee ledger, evaluations. Its name, duty numbers and time zone stay empty, so they come from the
settings (IVR_PROPERTY_NAME, IVR_DUTY_NUMBERS, IVR_TIMEZONE) as before: a single-property install keeps working
unchanged.

SQLite: the property columns of calls, tickets and evaluations are added with ALTER TABLE ADD COLUMN, not in
batch mode, which would recreate those tables under the rows that refer to them and drop the search triggers of
migration 0006 (tickets). The fee ledger's unique key gains the property, so fee_items is rebuilt (nothing
refers to it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import ivr.db
from datetime import UTC, datetime


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    properties = op.create_table('properties',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('duty_numbers', sa.JSON(), nullable=False),
    sa.Column('created_at', ivr.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ivr.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_properties')),
    sa.UniqueConstraint('code', name=op.f('uq_properties_code'))
    )
    now = datetime.now(UTC)
    op.bulk_insert(properties, [
        {'id': 1, 'code': 'default', 'name': None, 'timezone': None, 'duty_numbers': [], 'created_at': now,
         'updated_at': now},
    ])
    if op.get_bind().dialect.name == 'postgresql':  # the id was given: move the sequence past it
        op.execute("SELECT setval(pg_get_serial_sequence('properties', 'id'), 1)")
    op.create_table('property_numbers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('property_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_property_numbers_property_id_properties'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_property_numbers')),
    sa.UniqueConstraint('number', name=op.f('uq_property_numbers_number'))
    )
    op.create_index(op.f('ix_property_numbers_property_id'), 'property_numbers', ['property_id'], unique=False)
    op.create_table('residents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('property_id', sa.Integer(), nullable=False),
    sa.Column('room', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('updated_at', ivr.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_residents_property_id_properties'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_residents')),
    sa.UniqueConstraint('property_id', 'room', 'phone', name='uq_residents_property_room_phone')
    )
    op.create_index('ix_residents_property_phone', 'residents', ['property_id', 'phone'], unique=False)
    op.create_table('user_properties',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('property_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_user_properties_property_id_properties'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_properties_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'property_id', name=op.f('pk_user_properties'))
    )

    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table in ('calls', 'tickets', 'evaluations'):
        constraint = f'fk_{table}_property_id_properties'
        if sqlite:
            # SQLite refuses this while foreign keys are enforced: migrations run without (migrations/env.py).
            op.execute(f'ALTER TABLE {table} ADD COLUMN property_id INTEGER NOT NULL DEFAULT 1 '
                       f'CONSTRAINT {constraint} REFERENCES properties (id)')
        else:
            op.add_column(table, sa.Column('property_id', sa.Integer(), server_default='1', nullable=False))
            op.create_foreign_key(constraint, table, 'properties', ['property_id'], ['id'])
        op.create_index(f'ix_{table}_property_id', table, ['property_id'], unique=False)
    op.add_column('tickets', sa.Column('room_from_registry', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('fee_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('property_id', sa.Integer(), server_default='1', nullable=False))
        batch_op.drop_constraint(batch_op.f('uq_fee_items_room_type_period'), type_='unique')
        batch_op.create_index(batch_op.f('ix_fee_items_property_id'), ['property_id'], unique=False)
        batch_op.create_unique_constraint('uq_fee_items_property_room_type_period', ['property_id', 'room', 'fee_type', 'period'])
        batch_op.create_foreign_key(batch_op.f('fk_fee_items_property_id_properties'), 'properties', ['property_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('fee_items', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_fee_items_property_id_properties'), type_='foreignkey')
        batch_op.drop_constraint('uq_fee_items_property_room_type_period', type_='unique')
        batch_op.drop_index(batch_op.f('ix_fee_items_property_id'))
        batch_op.create_unique_constraint(batch_op.f('uq_fee_items_room_type_period'), ['room', 'fee_type', 'period'])
        batch_op.drop_column('property_id')

    sqlite = op.get_bind().dialect.name == 'sqlite'
    # ALTER TABLE DROP COLUMN, not batch mode (see the module's docstring); SQLite cannot drop a column that
    # a constraint names, so its REFERENCES goes with it only there.
    op.drop_column('tickets', 'room_from_registry')
    for table in ('evaluations', 'tickets', 'calls'):
        op.drop_index(f'ix_{table}_property_id', table_name=table)
        if not sqlite:
            op.drop_constraint(f'fk_{table}_property_id_properties', table, type_='foreignkey')
        op.drop_column(table, 'property_id')

    op.drop_table('user_properties')
    op.drop_index('ix_residents_property_phone', table_name='residents')
    op.drop_table('residents')
    op.drop_index(op.f('ix_property_numbers_property_id'), table_name='property_numbers')
    op.drop_table('property_numbers')
    op.drop_table('properties')
