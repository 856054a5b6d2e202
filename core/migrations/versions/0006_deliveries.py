"""deliveries: messages to send to chat channels, written with the turn that decided them

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 10:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.adapters.types
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('chat_id', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('buttons', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=8), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('not_before', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('lease_until', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('external_id', sa.String(length=64), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_due', ['channel', 'status', 'not_before'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_due')
    op.drop_table('deliveries')
