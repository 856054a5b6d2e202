"""accounts: users, channels, codes, consents, KYC, documents, cards, risk profiles, payments, flags

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 07:15:08.767174
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.adapters.types
from sqlalchemy.dialects import postgresql
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('bank_callbacks',
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('received_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('nonce', name=op.f('pk_bank_callbacks'))
    )
    op.create_table('sandbox_bank_transactions',
    sa.Column('bank_ref', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount', core.adapters.types.Amount(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('settled_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('business_date', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('bank_ref', name=op.f('pk_sandbox_bank_transactions'))
    )
    with op.batch_alter_table('sandbox_bank_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sandbox_bank_transactions_business_date'), ['business_date'], unique=False)

    op.create_table('verification_codes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('phone_hash', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('consumed_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verification_codes'))
    )
    with op.batch_alter_table('verification_codes', schema=None) as batch_op:
        batch_op.create_index('ix_verification_codes_phone_time', ['phone_hash', 'created_at'], unique=False)

    op.create_table('bank_cards',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_enc', sa.LargeBinary(), nullable=False),
    sa.Column('card_hash', sa.String(length=64), nullable=False),
    sa.Column('last4', sa.String(length=4), nullable=False),
    sa.Column('bank_code', sa.String(length=16), nullable=False),
    sa.Column('reserved_phone_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('bank_ref', sa.String(length=64), nullable=True),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('bound_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'active', 'replaced', 'failed')", name=op.f('ck_bank_cards_status')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_bank_cards_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_cards'))
    )
    with op.batch_alter_table('bank_cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bank_cards_card_hash'), ['card_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_bank_cards_reserved_phone_hash'), ['reserved_phone_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_bank_cards_user_id'), ['user_id'], unique=False)
        batch_op.create_index('uq_bank_cards_one_active', ['user_id'], unique=True, sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))

    op.create_table('channel_identities',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('display_name', sa.String(length=128), nullable=True),
    sa.Column('locale', sa.String(length=8), nullable=True),
    sa.Column('campaign', sa.String(length=64), nullable=True),
    sa.Column('referrer', sa.String(length=64), nullable=True),
    sa.Column('first_seen_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('unreachable', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_channel_identities_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_identities')),
    sa.UniqueConstraint('channel', 'external_id', name='uq_channel_identities_channel_external')
    )
    with op.batch_alter_table('channel_identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_channel_identities_user_id'), ['user_id'], unique=False)

    op.create_table('consents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('document', sa.String(length=32), nullable=False),
    sa.Column('version', sa.String(length=16), nullable=False),
    sa.Column('accepted_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_consents_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consents_user_id'), ['user_id'], unique=False)

    op.create_table('documents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data_enc', sa.LargeBinary(), nullable=False),
    sa.Column('uploaded_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_documents_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents'))
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_documents_user_id'), ['user_id'], unique=False)

    op.create_table('identities',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('full_name_enc', sa.LargeBinary(), nullable=False),
    sa.Column('name_masked', sa.String(length=64), nullable=False),
    sa.Column('id_type', sa.String(length=16), nullable=False),
    sa.Column('id_number_enc', sa.LargeBinary(), nullable=False),
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('id_masked', sa.String(length=32), nullable=False),
    sa.Column('country', sa.String(length=3), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_check_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('submitted_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'verified', 'rejected')", name=op.f('ck_identities_status')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_identities_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identities'))
    )
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.create_index('ix_identities_pending', ['status', 'next_check_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_identities_user_id'), ['user_id'], unique=False)
        batch_op.create_index('uq_identities_live_id_hash', ['id_hash'], unique=True, sqlite_where=sa.text("status <> 'rejected'"), postgresql_where=sa.text("status <> 'rejected'"))

    op.create_table('risk_flags',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('subject_key', sa.String(length=128), nullable=False),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='open', nullable=False),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('reviewed_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('reviewed_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_risk_flags_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_flags')),
    sa.UniqueConstraint('kind', 'subject_key', name='uq_risk_flags_kind_subject')
    )
    with op.batch_alter_table('risk_flags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_risk_flags_user_id'), ['user_id'], unique=False)

    op.create_table('risk_profiles',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('level', sa.String(length=2), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('answers', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('version', sa.String(length=16), nullable=False),
    sa.Column('assessed_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_risk_profiles_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_profiles'))
    )
    with op.batch_alter_table('risk_profiles', schema=None) as batch_op:
        batch_op.create_index('ix_risk_profiles_user_time', ['user_id', 'assessed_at'], unique=False)

    op.create_table('payment_orders',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount', core.adapters.types.Amount(), nullable=False),
    sa.Column('fee', core.adapters.types.Amount(), server_default='0', nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('bank_ref', sa.String(length=64), nullable=True),
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('failure_reason', sa.String(length=64), nullable=True),
    sa.Column('created_at', core.adapters.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('top_up', 'withdrawal')", name=op.f('ck_payment_orders_kind')),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f('ck_payment_orders_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_payment_orders_positive')),
    sa.ForeignKeyConstraint(['card_id'], ['bank_cards.id'], name=op.f('fk_payment_orders_card_id_bank_cards')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payment_orders_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_orders')),
    sa.UniqueConstraint('bank_ref', name=op.f('uq_payment_orders_bank_ref')),
    sa.UniqueConstraint('request_key', name=op.f('uq_payment_orders_request_key'))
    )
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.create_index('ix_payment_orders_user_time', ['user_id', 'created_at'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_enc', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('phone_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('phone_masked', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('is_investor', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('is_borrower', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('referral_code', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('referred_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('locale', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('registered_at', core.adapters.types.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('first_channel', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('first_campaign', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('first_referrer', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('kyc_status', sa.String(length=16), server_default='unverified', nullable=False))
        batch_op.create_index('uq_users_phone_hash', ['phone_hash'], unique=True)
        batch_op.create_index('uq_users_referral_code', ['referral_code'], unique=True)




def downgrade() -> None:

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('uq_users_referral_code')
        batch_op.drop_index('uq_users_phone_hash')
        batch_op.drop_column('kyc_status')
        batch_op.drop_column('first_referrer')
        batch_op.drop_column('first_campaign')
        batch_op.drop_column('first_channel')
        batch_op.drop_column('registered_at')
        batch_op.drop_column('locale')
        batch_op.drop_column('referred_by')
        batch_op.drop_column('referral_code')
        batch_op.drop_column('is_borrower')
        batch_op.drop_column('is_investor')
        batch_op.drop_column('phone_masked')
        batch_op.drop_column('phone_hash')
        batch_op.drop_column('phone_enc')

    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_orders_user_time')

    op.drop_table('payment_orders')
    with op.batch_alter_table('risk_profiles', schema=None) as batch_op:
        batch_op.drop_index('ix_risk_profiles_user_time')

    op.drop_table('risk_profiles')
    with op.batch_alter_table('risk_flags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_risk_flags_user_id'))

    op.drop_table('risk_flags')
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.drop_index('uq_identities_live_id_hash', sqlite_where=sa.text("status <> 'rejected'"), postgresql_where=sa.text("status <> 'rejected'"))
        batch_op.drop_index(batch_op.f('ix_identities_user_id'))
        batch_op.drop_index('ix_identities_pending')

    op.drop_table('identities')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_documents_user_id'))

    op.drop_table('documents')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consents_user_id'))

    op.drop_table('consents')
    with op.batch_alter_table('channel_identities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_channel_identities_user_id'))

    op.drop_table('channel_identities')
    with op.batch_alter_table('bank_cards', schema=None) as batch_op:
        batch_op.drop_index('uq_bank_cards_one_active', sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.drop_index(batch_op.f('ix_bank_cards_user_id'))
        batch_op.drop_index(batch_op.f('ix_bank_cards_reserved_phone_hash'))
        batch_op.drop_index(batch_op.f('ix_bank_cards_card_hash'))

    op.drop_table('bank_cards')
    with op.batch_alter_table('verification_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_verification_codes_phone_time')

    op.drop_table('verification_codes')
    with op.batch_alter_table('sandbox_bank_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sandbox_bank_transactions_business_date'))

    op.drop_table('sandbox_bank_transactions')
    op.drop_table('bank_callbacks')

