"""servicing: repayments, compensations, collections, tasks, job runs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 07:43:54.527106
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.adapters.types
from sqlalchemy.dialects import postgresql
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('job_runs',
    sa.Column('job', sa.String(length=32), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('step', sa.String(length=32), nullable=False),
    sa.Column('done_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('details', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('job', 'business_date', 'step', name=op.f('pk_job_runs'))
    )
    op.create_table('collection_actions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('loan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('borrower_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.Column('at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_collection_actions_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection_actions')),
    sa.UniqueConstraint('loan_id', 'period', 'stage', name='uq_collection_actions_stage')
    )
    with op.batch_alter_table('collection_actions', schema=None) as batch_op:
        batch_op.create_index('ix_collection_actions_borrower_date', ['borrower_id', 'business_date'], unique=False)

    op.create_table('compensations',
    sa.Column('loan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', core.adapters.types.Amount(), nullable=False),
    sa.Column('covered', core.adapters.types.Amount(), nullable=False),
    sa.Column('recovered', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('paid_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('transfer_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_compensations_loan_id_loans')),
    sa.PrimaryKeyConstraint('loan_id', name=op.f('pk_compensations'))
    )
    op.create_table('repayments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('loan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('amount', core.adapters.types.Amount(), nullable=False),
    sa.Column('penalty', core.adapters.types.Amount(), nullable=False),
    sa.Column('interest', core.adapters.types.Amount(), nullable=False),
    sa.Column('principal', core.adapters.types.Amount(), nullable=False),
    sa.Column('early_fee', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('management_fee', core.adapters.types.Amount(), nullable=False),
    sa.Column('to_fund', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('request_key', sa.String(length=120), nullable=False),
    sa.Column('transfer_id', sa.String(length=32), nullable=False),
    sa.Column('received_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_repayments_positive')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_repayments_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repayments')),
    sa.UniqueConstraint('request_key', name=op.f('uq_repayments_request_key'))
    )
    with op.batch_alter_table('repayments', schema=None) as batch_op:
        batch_op.create_index('ix_repayments_date', ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_repayments_loan_id'), ['loan_id'], unique=False)

    op.create_table('servicing_tasks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('loan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('borrower_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('outcome', sa.String(length=24), nullable=True),
    sa.Column('promise_date', sa.Date(), nullable=True),
    sa.Column('promise_amount', core.adapters.types.Amount(), nullable=True),
    sa.Column('promise_status', sa.String(length=16), nullable=True),
    sa.Column('assigned_to', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_servicing_tasks_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_servicing_tasks')),
    sa.UniqueConstraint('kind', 'loan_id', 'stage', name='uq_servicing_tasks_kind_loan_stage')
    )
    with op.batch_alter_table('servicing_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_servicing_tasks_loan_id'), ['loan_id'], unique=False)
        batch_op.create_index('ix_servicing_tasks_open', ['kind', 'status'], unique=False)

    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.add_column(sa.Column('principal_repaid', core.adapters.types.Amount(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('interest_received', core.adapters.types.Amount(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('compensated', core.adapters.types.Amount(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('written_off', core.adapters.types.Amount(), server_default='0', nullable=False))

    with op.batch_alter_table('installments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('penalty_through', sa.Date(), nullable=True))

    with op.batch_alter_table('loans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dpd', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('principal_repaid', core.adapters.types.Amount(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('principal_written_off', core.adapters.types.Amount(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('written_off_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('compensated_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('escalation', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('risk_flag', sa.String(length=32), nullable=True))
    op.create_index("ix_installments_unpaid_due", "installments", ["due_date"],
                    sqlite_where=sa.text("status <> 'paid'"),
                    postgresql_where=sa.text("status <> 'paid'"))
    op.create_index("ix_collection_actions_date_outcome", "collection_actions",
                    ["business_date", "outcome"])


def downgrade() -> None:
    op.drop_index("ix_collection_actions_date_outcome", table_name="collection_actions")
    op.drop_index("ix_installments_unpaid_due", table_name="installments")

    with op.batch_alter_table('loans', schema=None) as batch_op:
        batch_op.drop_column('risk_flag')
        batch_op.drop_column('escalation')
        batch_op.drop_column('compensated_at')
        batch_op.drop_column('written_off_at')
        batch_op.drop_column('principal_written_off')
        batch_op.drop_column('principal_repaid')
        batch_op.drop_column('dpd')

    with op.batch_alter_table('installments', schema=None) as batch_op:
        batch_op.drop_column('penalty_through')

    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.drop_column('written_off')
        batch_op.drop_column('compensated')
        batch_op.drop_column('interest_received')
        batch_op.drop_column('principal_repaid')

    with op.batch_alter_table('servicing_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_servicing_tasks_open')
        batch_op.drop_index(batch_op.f('ix_servicing_tasks_loan_id'))

    op.drop_table('servicing_tasks')
    with op.batch_alter_table('repayments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_repayments_loan_id'))
        batch_op.drop_index('ix_repayments_date')

    op.drop_table('repayments')
    op.drop_table('compensations')
    with op.batch_alter_table('collection_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_collection_actions_borrower_date')

    op.drop_table('collection_actions')
    op.drop_table('job_runs')

