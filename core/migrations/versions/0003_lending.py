"""lending: applications, loans, bids, installments, auto-invest, vouchers, audit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 07:28:29.924291
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.adapters.types
from sqlalchemy.dialects import postgresql
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('subject_kind', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=False),
    sa.Column('details', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_log_subject', ['subject_kind', 'subject_id'], unique=False)

    op.create_table('auto_invest_rules',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('investor_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('grades', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('min_rate', core.adapters.types.Ratio(), nullable=False),
    sa.Column('max_rate', core.adapters.types.Ratio(), nullable=False),
    sa.Column('min_term', sa.Integer(), nullable=False),
    sa.Column('max_term', sa.Integer(), nullable=False),
    sa.Column('amount_per_loan', core.adapters.types.Amount(), nullable=False),
    sa.Column('keep_balance', core.adapters.types.Amount(), nullable=False),
    sa.Column('total_cap', core.adapters.types.Amount(), nullable=False),
    sa.Column('max_share_pct', core.adapters.types.Ratio(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('authorised_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_matched_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['investor_id'], ['users.id'], name=op.f('fk_auto_invest_rules_investor_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auto_invest_rules')),
    sa.UniqueConstraint('investor_id', name=op.f('uq_auto_invest_rules_investor_id'))
    )
    op.create_table('loan_applications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('product', sa.String(length=32), nullable=False),
    sa.Column('amount', core.adapters.types.Amount(), nullable=False),
    sa.Column('term_months', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=24), nullable=False),
    sa.Column('purpose', sa.String(length=200), nullable=False),
    sa.Column('facts', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('pd', core.adapters.types.Ratio(), nullable=True),
    sa.Column('grade', sa.String(length=2), nullable=True),
    sa.Column('risk_level', sa.String(length=2), nullable=True),
    sa.Column('annual_rate', core.adapters.types.Ratio(), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('flags', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('request_key', sa.String(length=80), nullable=True),
    sa.CheckConstraint("status IN ('review', 'approved', 'rejected', 'withdrawn')", name=op.f('ck_loan_applications_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_loan_applications_positive')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_loan_applications_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loan_applications')),
    sa.UniqueConstraint('request_key', name=op.f('uq_loan_applications_request_key'))
    )
    with op.batch_alter_table('loan_applications', schema=None) as batch_op:
        batch_op.create_index('ix_loan_applications_status', ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_loan_applications_user_id'), ['user_id'], unique=False)

    op.create_table('vouchers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('min_investment', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('boost', core.adapters.types.Ratio(), server_default='0', nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source_key', sa.String(length=80), nullable=False),
    sa.Column('granted_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('used_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('bid_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_vouchers_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vouchers')),
    sa.UniqueConstraint('source_key', name=op.f('uq_vouchers_source_key'))
    )
    with op.batch_alter_table('vouchers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vouchers_user_id'), ['user_id'], unique=False)

    op.create_table('due_diligence_notes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('staff_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['loan_applications.id'], name=op.f('fk_due_diligence_notes_application_id_loan_applications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_due_diligence_notes'))
    )
    with op.batch_alter_table('due_diligence_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_due_diligence_notes_application_id'), ['application_id'], unique=False)

    op.create_table('loans',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('borrower_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('product', sa.String(length=32), nullable=False),
    sa.Column('amount', core.adapters.types.Amount(), nullable=False),
    sa.Column('term_months', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=24), nullable=False),
    sa.Column('annual_rate', core.adapters.types.Ratio(), nullable=False),
    sa.Column('grade', sa.String(length=2), nullable=False),
    sa.Column('risk_level', sa.String(length=2), nullable=False),
    sa.Column('purpose', sa.String(length=200), nullable=False),
    sa.Column('facts', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('funded', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('investors', sa.Integer(), server_default='0', nullable=False),
    sa.Column('novice_only', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('listed_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('funded_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('disbursed_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('service_fee', core.adapters.types.Amount(), nullable=True),
    sa.Column('protection_fee', core.adapters.types.Amount(), nullable=True),
    sa.Column('principal_outstanding', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('agreement_version', sa.String(length=16), nullable=True),
    sa.CheckConstraint("status IN ('listed', 'funded', 'cancelled', 'active', 'overdue', 'repaid', 'written_off')", name=op.f('ck_loans_status')),
    sa.CheckConstraint('funded >= 0 AND funded <= amount', name=op.f('ck_loans_not_oversold')),
    sa.ForeignKeyConstraint(['application_id'], ['loan_applications.id'], name=op.f('fk_loans_application_id_loan_applications')),
    sa.ForeignKeyConstraint(['borrower_id'], ['users.id'], name=op.f('fk_loans_borrower_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loans')),
    sa.UniqueConstraint('application_id', name=op.f('uq_loans_application_id'))
    )
    with op.batch_alter_table('loans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loans_borrower_id'), ['borrower_id'], unique=False)
        batch_op.create_index('ix_loans_status_expires', ['status', 'expires_at'], unique=False)
        batch_op.create_index('ix_loans_status_listed', ['status', 'listed_at'], unique=False)

    op.create_table('bids',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('loan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('investor_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', core.adapters.types.Amount(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('request_key', sa.String(length=80), nullable=False),
    sa.Column('auto', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('voucher_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('frozen', 'active', 'refunded')", name=op.f('ck_bids_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_bids_positive')),
    sa.ForeignKeyConstraint(['investor_id'], ['users.id'], name=op.f('fk_bids_investor_id_users')),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_bids_loan_id_loans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bids')),
    sa.UniqueConstraint('request_key', name=op.f('uq_bids_request_key'))
    )
    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bids_investor_id'), ['investor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bids_loan_id'), ['loan_id'], unique=False)

    op.create_table('installments',
    sa.Column('loan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('principal', core.adapters.types.Amount(), nullable=False),
    sa.Column('interest', core.adapters.types.Amount(), nullable=False),
    sa.Column('paid_principal', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('paid_interest', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('penalty', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('paid_penalty', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('status', sa.String(length=16), server_default='due', nullable=False),
    sa.Column('paid_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_installments_loan_id_loans')),
    sa.PrimaryKeyConstraint('loan_id', 'period', name=op.f('pk_installments'))
    )
    with op.batch_alter_table('installments', schema=None) as batch_op:
        batch_op.create_index('ix_installments_due', ['due_date', 'status'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('installments', schema=None) as batch_op:
        batch_op.drop_index('ix_installments_due')

    op.drop_table('installments')
    with op.batch_alter_table('bids', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bids_loan_id'))
        batch_op.drop_index(batch_op.f('ix_bids_investor_id'))

    op.drop_table('bids')
    with op.batch_alter_table('loans', schema=None) as batch_op:
        batch_op.drop_index('ix_loans_status_listed')
        batch_op.drop_index('ix_loans_status_expires')
        batch_op.drop_index(batch_op.f('ix_loans_borrower_id'))

    op.drop_table('loans')
    with op.batch_alter_table('due_diligence_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_due_diligence_notes_application_id'))

    op.drop_table('due_diligence_notes')
    with op.batch_alter_table('vouchers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vouchers_user_id'))

    op.drop_table('vouchers')
    with op.batch_alter_table('loan_applications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_loan_applications_user_id'))
        batch_op.drop_index('ix_loan_applications_status')

    op.drop_table('loan_applications')
    op.drop_table('auto_invest_rules')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_subject')
        batch_op.drop_index('ix_audit_log_at')

    op.drop_table('audit_log')

