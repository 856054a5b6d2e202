"""foundation: users, ledger, outbox, analytics events

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 07:05:54.787107
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.adapters.types
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('analytics_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('campaign', sa.String(length=64), nullable=True),
    sa.Column('props', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_analytics_events'))
    )
    with op.batch_alter_table('analytics_events', schema=None) as batch_op:
        batch_op.create_index('ix_analytics_events_name_time', ['name', 'occurred_at'], unique=False)
        batch_op.create_index('ix_analytics_events_time', ['occurred_at'], unique=False)
        batch_op.create_index('ix_analytics_events_user_time', ['user_id', 'occurred_at'], unique=False)

    op.create_table('ledger_transfers',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('memo', sa.String(length=200), server_default='', nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('reverses_id', sa.String(length=32), nullable=True),
    sa.Column('posted_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['reverses_id'], ['ledger_transfers.id'], name=op.f('fk_ledger_transfers_reverses_id_ledger_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transfers')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_transfers_idempotency_key')),
    sa.UniqueConstraint('reverses_id', name=op.f('uq_ledger_transfers_reverses_id'))
    )
    with op.batch_alter_table('ledger_transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_transfers_posted_at'), ['posted_at'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users'))
    )
    op.create_table('ledger_accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('normal_side', sa.String(length=6), nullable=False),
    sa.Column('allow_negative', sa.Boolean(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('owner_user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('balance', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("normal_side IN ('debit', 'credit')", name=op.f('ck_ledger_accounts_normal_side')),
    sa.CheckConstraint('allow_negative OR balance >= 0', name=op.f('ck_ledger_accounts_not_overdrawn')),
    sa.ForeignKeyConstraint(['owner_user_id'], ['users.id'], name=op.f('fk_ledger_accounts_owner_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('code', name=op.f('uq_ledger_accounts_code'))
    )
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_accounts_owner_user_id'), ['owner_user_id'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('template', sa.String(length=80), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('not_before', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_outbox_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_outbox_dedupe_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_created', ['created_at'], unique=False)
        batch_op.create_index('ix_outbox_status_due', ['status', 'not_before'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_user_id'), ['user_id'], unique=False)

    op.create_table('ledger_postings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('transfer_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', core.adapters.types.Amount(), nullable=False),
    sa.Column('posted_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_ledger_postings_non_zero')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_postings_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['transfer_id'], ['ledger_transfers.id'], name=op.f('fk_ledger_postings_transfer_id_ledger_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_postings'))
    )
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_postings_account_time', ['account_id', 'posted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_postings_transfer_id'), ['transfer_id'], unique=False)

    _immutable("ledger_transfers")
    _immutable("ledger_postings")




def _immutable(table: str) -> None:
    """Posted entries are never edited, only reversed: the database refuses UPDATE and DELETE."""
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} are immutable: post a reversal'); END"
            )
    else:
        op.execute(
            "CREATE OR REPLACE FUNCTION ledger_immutable() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION '% are immutable: post a reversal', TG_TABLE_NAME; END $$ "
            "LANGUAGE plpgsql"
        )
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_immutable()"
        )


def downgrade() -> None:

    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_postings_transfer_id'))
        batch_op.drop_index('ix_ledger_postings_account_time')

    op.drop_table('ledger_postings')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_user_id'))
        batch_op.drop_index('ix_outbox_status_due')
        batch_op.drop_index('ix_outbox_created')

    op.drop_table('outbox')
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_accounts_owner_user_id'))

    op.drop_table('ledger_accounts')
    op.drop_table('users')
    with op.batch_alter_table('ledger_transfers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_transfers_posted_at'))

    op.drop_table('ledger_transfers')
    with op.batch_alter_table('analytics_events', schema=None) as batch_op:
        batch_op.drop_index('ix_analytics_events_user_time')
        batch_op.drop_index('ix_analytics_events_time')
        batch_op.drop_index('ix_analytics_events_name_time')

    op.drop_table('analytics_events')

