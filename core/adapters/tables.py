"""The schema, as SQLAlchemy Core tables. Alembic migrations under ``core/migrations`` create it.

Rules are checked twice: in code (named errors) and here (constraints), so a bug or a hand-made
edit cannot put the data into a state the code would refuse.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

from core.adapters.types import Amount, Id, Json, Ratio, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False, server_default="active"),
    # accounts (migration 0002)
    Column("phone_enc", LargeBinary, nullable=True),
    Column("phone_hash", String(64), nullable=True),
    Column("phone_masked", String(32), nullable=True),
    Column("is_investor", Boolean, nullable=False, server_default=false()),
    Column("is_borrower", Boolean, nullable=False, server_default=false()),
    Column("referral_code", String(16), nullable=True),
    Column("referred_by", Id, nullable=True),
    Column("locale", String(8), nullable=True),
    Column("registered_at", UtcDateTime, nullable=True),
    Column("first_channel", String(32), nullable=True),
    Column("first_campaign", String(64), nullable=True),
    Column("first_referrer", String(64), nullable=True),
    Column("kyc_status", String(16), nullable=False, server_default="unverified"),
    Index("uq_users_phone_hash", "phone_hash", unique=True),
    Index("uq_users_referral_code", "referral_code", unique=True),
)

channel_identities = Table(
    "channel_identities",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("external_id", String(64), nullable=False),
    Column("user_id", Id, ForeignKey("users.id"), nullable=True, index=True),
    Column("display_name", String(128), nullable=True),
    Column("locale", String(8), nullable=True),
    Column("campaign", String(64), nullable=True),
    Column("referrer", String(64), nullable=True),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("unreachable", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("channel", "external_id", name="uq_channel_identities_channel_external"),
)

verification_codes = Table(
    "verification_codes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("phone_hash", String(64), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("consumed_at", UtcDateTime, nullable=True),
    Index("ix_verification_codes_phone_time", "phone_hash", "created_at"),
)

consents = Table(
    "consents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("document", String(32), nullable=False),
    Column("version", String(16), nullable=False),
    Column("accepted_at", UtcDateTime, nullable=False),
)

identities = Table(
    "identities",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("full_name_enc", LargeBinary, nullable=False),
    Column("name_masked", String(64), nullable=False),
    Column("id_type", String(16), nullable=False),
    Column("id_number_enc", LargeBinary, nullable=False),
    Column("id_hash", String(64), nullable=False),
    Column("id_masked", String(32), nullable=False),
    Column("country", String(3), nullable=False),
    Column("birth_date", Date, nullable=True),
    Column("status", String(16), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_check_at", UtcDateTime, nullable=True),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("decided_at", UtcDateTime, nullable=True),
    CheckConstraint("status IN ('pending', 'verified', 'rejected')", name="status"),
    Index("uq_identities_live_id_hash", "id_hash", unique=True,
          sqlite_where=text("status <> 'rejected'"),
          postgresql_where=text("status <> 'rejected'")),
    Index("ix_identities_pending", "status", "next_check_at"),
)

documents = Table(
    "documents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data_enc", LargeBinary, nullable=False),
    Column("uploaded_at", UtcDateTime, nullable=False),
)

bank_cards = Table(
    "bank_cards",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("card_enc", LargeBinary, nullable=False),
    Column("card_hash", String(64), nullable=False, index=True),
    Column("last4", String(4), nullable=False),
    Column("bank_code", String(16), nullable=False),
    Column("reserved_phone_hash", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("bank_ref", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("bound_at", UtcDateTime, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    CheckConstraint("status IN ('pending', 'active', 'replaced', 'failed')", name="status"),
    Index("uq_bank_cards_one_active", "user_id", unique=True,
          sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
)

risk_profiles = Table(
    "risk_profiles",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("level", String(2), nullable=False),
    Column("score", Integer, nullable=False),
    Column("answers", Json, nullable=False),
    Column("version", String(16), nullable=False),
    Column("assessed_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_risk_profiles_user_time", "user_id", "assessed_at"),
)

payment_orders = Table(
    "payment_orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("fee", Amount, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),
    Column("card_id", Id, ForeignKey("bank_cards.id"), nullable=True),
    Column("bank_ref", String(64), nullable=True, unique=True),
    Column("request_key", String(64), nullable=False, unique=True),
    Column("failure_reason", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
    CheckConstraint("kind IN ('top_up', 'withdrawal')", name="kind"),
    CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
    CheckConstraint("amount > 0", name="positive"),
    Index("ix_payment_orders_user_time", "user_id", "created_at"),
)

bank_callbacks = Table(
    "bank_callbacks",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("order_id", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
)

risk_flags = Table(
    "risk_flags",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("user_id", Id, ForeignKey("users.id"), nullable=True, index=True),
    Column("subject_key", String(128), nullable=False),
    Column("details", Json, nullable=True),
    Column("status", String(16), nullable=False, server_default="open"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("reviewed_by", Id, nullable=True),
    Column("reviewed_at", UtcDateTime, nullable=True),
    UniqueConstraint("kind", "subject_key", name="uq_risk_flags_kind_subject"),
)

# The custody bank's own book, kept by the sandbox bank (a real bank keeps it on its side).
sandbox_bank_transactions = Table(
    "sandbox_bank_transactions",
    metadata,
    Column("bank_ref", String(64), primary_key=True),
    Column("order_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("settled_at", UtcDateTime, nullable=True),
    Column("business_date", Date, nullable=True, index=True),
)

# --- ledger ------------------------------------------------------------------------------------

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code", String(80), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("normal_side", String(6), nullable=False),
    Column("allow_negative", Boolean, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("owner_user_id", Id, ForeignKey("users.id"), nullable=True, index=True),
    Column("balance", Amount, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("normal_side IN ('debit', 'credit')", name="normal_side"),
    CheckConstraint("allow_negative OR balance >= 0", name="not_overdrawn"),
)

ledger_transfers = Table(
    "ledger_transfers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("idempotency_key", String(160), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    Column("memo", String(200), nullable=False, server_default=""),
    Column("fingerprint", String(64), nullable=False),
    Column("reverses_id", String(32), ForeignKey("ledger_transfers.id"), nullable=True,
           unique=True),
    Column("posted_at", UtcDateTime, nullable=False, index=True),
    Column("meta", Json, nullable=True),
)

ledger_postings = Table(
    "ledger_postings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("transfer_id", String(32), ForeignKey("ledger_transfers.id"), nullable=False,
           index=True),
    Column("account_id", Id, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount", Amount, nullable=False),  # signed: debit positive, credit negative
    Column("posted_at", UtcDateTime, nullable=False),
    CheckConstraint("amount <> 0", name="non_zero"),
    Index("ix_ledger_postings_account_time", "account_id", "posted_at"),
)

# --- outbox and analytics ------------------------------------------------------------------------

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=True, index=True),
    Column("template", String(80), nullable=False),
    Column("params", Json, nullable=False),
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("not_before", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("channel", String(32), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("sent_at", UtcDateTime, nullable=True),
    Index("ix_outbox_status_due", "status", "not_before"),
    Index("ix_outbox_created", "created_at"),
)

analytics_events = Table(
    "analytics_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("user_id", Id, nullable=True),
    Column("channel", String(32), nullable=True),
    Column("campaign", String(64), nullable=True),
    Column("props", Json, nullable=True),
    Index("ix_analytics_events_time", "occurred_at"),
    Index("ix_analytics_events_name_time", "name", "occurred_at"),
    Index("ix_analytics_events_user_time", "user_id", "occurred_at"),
)

# --- lending (migration 0003) ------------------------------------------------------------------

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("actor_kind", String(16), nullable=False),  # staff | system | user
    Column("actor_id", Id, nullable=True),
    Column("action", String(48), nullable=False),
    Column("subject_kind", String(32), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("details", Json, nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_audit_log_subject", "subject_kind", "subject_id"),
    Index("ix_audit_log_at", "at"),
)

loan_applications = Table(
    "loan_applications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("product", String(32), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("term_months", Integer, nullable=False),
    Column("method", String(24), nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("facts", Json, nullable=False),  # income, employment, debts, collateral (as given)
    Column("status", String(16), nullable=False),
    Column("score", Integer, nullable=True),
    Column("pd", Ratio, nullable=True),
    Column("grade", String(2), nullable=True),
    Column("risk_level", String(2), nullable=True),
    Column("annual_rate", Ratio, nullable=True),
    Column("reason", String(64), nullable=True),
    Column("flags", Json, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("decided_at", UtcDateTime, nullable=True),
    Column("decided_by", Id, nullable=True),
    Column("request_key", String(80), nullable=True, unique=True),
    CheckConstraint("status IN ('review', 'approved', 'rejected', 'withdrawn')", name="status"),
    CheckConstraint("amount > 0", name="positive"),
    Index("ix_loan_applications_status", "status", "created_at"),
)

due_diligence_notes = Table(
    "due_diligence_notes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("application_id", Id, ForeignKey("loan_applications.id"), nullable=False,
           index=True),
    Column("staff_id", Id, nullable=False),
    Column("note", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

loans = Table(
    "loans",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("application_id", Id, ForeignKey("loan_applications.id"), nullable=False,
           unique=True),
    Column("borrower_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("product", String(32), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("term_months", Integer, nullable=False),
    Column("method", String(24), nullable=False),
    Column("annual_rate", Ratio, nullable=False),
    Column("grade", String(2), nullable=False),
    Column("risk_level", String(2), nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("facts", Json, nullable=False),  # masked borrower facts shown on the listing
    Column("status", String(16), nullable=False),
    Column("funded", Amount, nullable=False, server_default="0"),
    Column("investors", Integer, nullable=False, server_default="0"),
    Column("novice_only", Boolean, nullable=False, server_default=false()),
    Column("listed_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("funded_at", UtcDateTime, nullable=True),
    Column("disbursed_at", UtcDateTime, nullable=True),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("service_fee", Amount, nullable=True),
    Column("protection_fee", Amount, nullable=True),
    Column("principal_outstanding", Amount, nullable=False, server_default="0"),
    Column("agreement_version", String(16), nullable=True),
    # servicing (migration 0004)
    Column("dpd", Integer, nullable=False, server_default="0"),
    Column("principal_repaid", Amount, nullable=False, server_default="0"),
    Column("principal_written_off", Amount, nullable=False, server_default="0"),
    Column("written_off_at", UtcDateTime, nullable=True),
    Column("compensated_at", UtcDateTime, nullable=True),
    Column("escalation", String(16), nullable=True),  # outsourced | legal
    Column("risk_flag", String(32), nullable=True),
    CheckConstraint(
        "status IN ('listed', 'funded', 'cancelled', 'active', 'overdue', 'repaid', "
        "'written_off')", name="status"),
    CheckConstraint("funded >= 0 AND funded <= amount", name="not_oversold"),
    Index("ix_loans_status_listed", "status", "listed_at"),
    Index("ix_loans_status_expires", "status", "expires_at"),
)

bids = Table(
    "bids",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("loan_id", Id, ForeignKey("loans.id"), nullable=False, index=True),
    Column("investor_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("amount", Amount, nullable=False),
    Column("status", String(16), nullable=False),  # frozen | active | refunded
    Column("request_key", String(80), nullable=False, unique=True),
    Column("auto", Boolean, nullable=False, server_default=false()),
    Column("voucher_id", Id, nullable=True),
    Column("channel", String(16), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # servicing (migration 0004): what came back on this claim
    Column("principal_repaid", Amount, nullable=False, server_default="0"),
    Column("interest_received", Amount, nullable=False, server_default="0"),
    Column("compensated", Amount, nullable=False, server_default="0"),
    Column("written_off", Amount, nullable=False, server_default="0"),
    CheckConstraint("amount > 0", name="positive"),
    CheckConstraint("status IN ('frozen', 'active', 'refunded')", name="status"),
)

installments = Table(
    "installments",
    metadata,
    Column("loan_id", Id, ForeignKey("loans.id"), primary_key=True),
    Column("period", Integer, primary_key=True),
    Column("due_date", Date, nullable=False),
    Column("principal", Amount, nullable=False),
    Column("interest", Amount, nullable=False),
    Column("paid_principal", Amount, nullable=False, server_default="0"),
    Column("paid_interest", Amount, nullable=False, server_default="0"),
    Column("penalty", Amount, nullable=False, server_default="0"),
    Column("paid_penalty", Amount, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False, server_default="due"),
    Column("paid_at", UtcDateTime, nullable=True),
    Column("penalty_through", Date, nullable=True),  # penalty accrued up to this business date
    Index("ix_installments_due", "due_date", "status"),
    # what the daily job walks: only unpaid installments, by due date
    Index("ix_installments_unpaid_due", "due_date", sqlite_where=text("status <> 'paid'"),
          postgresql_where=text("status <> 'paid'")),
)

auto_invest_rules = Table(
    "auto_invest_rules",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("investor_id", Id, ForeignKey("users.id"), nullable=False, unique=True),
    Column("grades", Json, nullable=False),
    Column("min_rate", Ratio, nullable=False),
    Column("max_rate", Ratio, nullable=False),
    Column("min_term", Integer, nullable=False),
    Column("max_term", Integer, nullable=False),
    Column("amount_per_loan", Amount, nullable=False),
    Column("keep_balance", Amount, nullable=False),
    Column("total_cap", Amount, nullable=False),
    Column("max_share_pct", Ratio, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("authorised_at", UtcDateTime, nullable=False),
    Column("last_matched_at", UtcDateTime, nullable=True),
)

vouchers = Table(
    "vouchers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # red_packet | interest_boost
    Column("value", Amount, nullable=False, server_default="0"),
    Column("min_investment", Amount, nullable=False, server_default="0"),
    Column("boost", Ratio, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),  # available | used | expired
    Column("source_key", String(80), nullable=False, unique=True),
    Column("granted_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Column("bid_id", Id, nullable=True),
)

# --- servicing (migration 0004) ----------------------------------------------------------------

repayments = Table(
    "repayments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("loan_id", Id, ForeignKey("loans.id"), nullable=False, index=True),
    Column("source", String(16), nullable=False),  # auto_debit | borrower | early | collateral
    Column("amount", Amount, nullable=False),
    Column("penalty", Amount, nullable=False),
    Column("interest", Amount, nullable=False),
    Column("principal", Amount, nullable=False),
    Column("early_fee", Amount, nullable=False, server_default="0"),
    Column("management_fee", Amount, nullable=False),
    Column("to_fund", Amount, nullable=False, server_default="0"),
    Column("request_key", String(120), nullable=False, unique=True),
    Column("transfer_id", String(32), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("business_date", Date, nullable=False),
    CheckConstraint("amount > 0", name="positive"),
    Index("ix_repayments_date", "business_date"),
)

compensations = Table(
    "compensations",
    metadata,
    Column("loan_id", Id, ForeignKey("loans.id"), primary_key=True),
    Column("amount", Amount, nullable=False),
    Column("covered", Amount, nullable=False),  # what the claims were at the time
    Column("recovered", Amount, nullable=False, server_default="0"),
    Column("paid_at", UtcDateTime, nullable=False),
    Column("transfer_id", String(32), nullable=False),
)

collection_actions = Table(
    "collection_actions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("loan_id", Id, ForeignKey("loans.id"), nullable=False),
    Column("period", Integer, nullable=False),
    Column("stage", String(16), nullable=False),
    Column("action", String(24), nullable=False),
    Column("business_date", Date, nullable=False),
    Column("borrower_id", Id, nullable=False),
    Column("outcome", String(24), nullable=False),  # queued | created | skipped_late
    Column("at", UtcDateTime, nullable=False),
    UniqueConstraint("loan_id", "period", "stage", name="uq_collection_actions_stage"),
    Index("ix_collection_actions_borrower_date", "borrower_id", "business_date"),
    Index("ix_collection_actions_date_outcome", "business_date", "outcome"),
)

servicing_tasks = Table(
    "servicing_tasks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(24), nullable=False),  # collections | use_of_funds | write_off_review
    Column("loan_id", Id, ForeignKey("loans.id"), nullable=False, index=True),
    Column("borrower_id", Id, nullable=False),
    Column("stage", String(16), nullable=True),
    Column("status", String(16), nullable=False),  # open | done
    Column("due_date", Date, nullable=True),
    Column("outcome", String(24), nullable=True),
    Column("promise_date", Date, nullable=True),
    Column("promise_amount", Amount, nullable=True),
    Column("promise_status", String(16), nullable=True),  # pending | kept | broken
    Column("assigned_to", Id, nullable=True),
    Column("notes", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime, nullable=True),
    UniqueConstraint("kind", "loan_id", "stage", name="uq_servicing_tasks_kind_loan_stage"),
    Index("ix_servicing_tasks_open", "kind", "status"),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("job", String(32), primary_key=True),
    Column("business_date", Date, primary_key=True),
    Column("step", String(32), primary_key=True),
    Column("done_at", UtcDateTime, nullable=False),
    Column("details", Json, nullable=True),
)

# --- dialog (migration 0005) --------------------------------------------------------------------

conversations = Table(
    "conversations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("user_id", Id, nullable=True, index=True),
    Column("locale", String(8), nullable=False),
    Column("flow", String(32), nullable=True),
    Column("step", String(32), nullable=True),
    Column("data", Json, nullable=True),
    Column("mode", String(16), nullable=False, server_default="bot"),  # bot | queued | human
    Column("handover_reason", String(24), nullable=True),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("misses", Integer, nullable=False, server_default="0"),
    Column("queued_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    # the human side (agent console): who holds it, since when, snoozed, resolved, rating
    Column("agent_id", Id, nullable=True, index=True),
    Column("claimed_at", UtcDateTime, nullable=True),
    Column("snoozed_until", UtcDateTime, nullable=True),
    Column("resolved_at", UtcDateTime, nullable=True),
    Column("rating", Integer, nullable=True),
    UniqueConstraint("channel", "chat_id", name="uq_conversations_channel_chat"),
    Index("ix_conversations_queue", "mode", "priority", "queued_at"),
)

inbound_log = Table(
    "inbound_log",
    metadata,
    Column("channel", String(16), primary_key=True),
    Column("message_id", String(64), primary_key=True),
    Column("conversation_id", Id, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

chat_messages = Table(
    "chat_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", Id, ForeignKey("conversations.id"), nullable=False),
    Column("sender", String(8), nullable=False),  # user | bot | agent | system
    Column("author", String(64), nullable=True),  # the agent's display name, for agents
    Column("text", Text, nullable=False),
    Column("buttons", Json, nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_chat_messages_conversation", "conversation_id", "id"),
)

staff = Table(
    # People who work in the console: agents, managers, admins. Passwords are argon2 hashes.
    "staff",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),  # login name
    Column("display_name", String(64), nullable=False),  # shown to customers ("Alice")
    Column("role", String(16), nullable=False),  # agent | manager | admin
    Column("password_hash", String(200), nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("presence", String(8), nullable=False, server_default="away"),  # online | away
    Column("capacity", Integer, nullable=True),  # open conversations; null: the setting
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_login_at", UtcDateTime, nullable=True),
)

staff_sessions = Table(
    # A logged-in browser: the cookie holds a random token, only its hash is stored.
    "staff_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("staff_id", Id, ForeignKey("staff.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("ip", String(64), nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

login_attempts = Table(
    # Failed and successful logins, for the per-IP lock and the security audit.
    "login_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("ip", String(64), nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_login_attempts_ip_time", "ip", "at"),
)

conversation_notes = Table(
    # Private notes agents leave on a conversation; never sent to the customer.
    "conversation_notes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", Id, ForeignKey("conversations.id"), nullable=False, index=True),
    Column("staff_id", Id, ForeignKey("staff.id"), nullable=False),
    Column("text", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

deliveries = Table(
    # Messages to send to a chat channel (bot replies, agent messages, notices), written in the
    # transaction that decided them and sent after it commits: a crash between the two resends
    # them instead of losing them. status: pending -> sending (leased) -> sent | dropped.
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("buttons", Json, nullable=True),
    Column("kind", String(8), nullable=False),  # reply | agent | notice
    Column("status", String(8), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("not_before", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("external_id", String(64), nullable=True),  # the channel's message id once sent
    Column("last_error", Text, nullable=True),
    # notifications (migration 0008): the notice a message carries, so its outcome reaches the
    # outbox; priority 0 conversation, 1 notice, 2 marketing (claimed in that order)
    Column("outbox_id", Id, nullable=True, index=True),
    Column("priority", Integer, nullable=False, server_default="1"),
    Index("ix_deliveries_due", "channel", "status", "not_before"),
)

faq_misses = Table(
    "faq_misses",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("text", Text, nullable=False),
    Column("locale", String(8), nullable=False),
    Column("best_score", Integer, nullable=True),
    Column("best_article", String(64), nullable=True),
    Column("at", UtcDateTime, nullable=False, index=True),
)

notification_preferences = Table(
    # What a user chose about proactive messages (migration 0008). No row: the defaults
    # (marketing on, updates on, the default quiet hours, the chat used last).
    "notification_preferences",
    metadata,
    Column("user_id", Id, ForeignKey("users.id"), primary_key=True),
    Column("marketing_muted", Boolean, nullable=False, server_default=false()),
    Column("updates_muted", Boolean, nullable=False, server_default=false()),
    Column("quiet_hours", String(11), nullable=True),  # "22:00-07:00", "off"; NULL: default
    Column("preferred_channel", String(16), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

broadcasts = Table(
    # A manager's message to a segment of users (precision marketing, user care).
    # status: draft -> scheduled -> sending -> sent; draft | scheduled -> cancelled
    "broadcasts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(120), nullable=False),
    Column("segment", Json, nullable=False),
    Column("text_zh", Text, nullable=False),
    Column("text_en", Text, nullable=False),
    Column("buttons", Json, nullable=True),  # action ids from a fixed list
    Column("status", String(16), nullable=False),
    Column("created_by", Id, ForeignKey("staff.id"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("send_at", UtcDateTime, nullable=True),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("audience", Integer, nullable=True),  # users the segment held when it went out
    Index("ix_broadcasts_status_send_at", "status", "send_at"),
)

broadcast_recipients = Table(
    # One row per user a broadcast went to; conversion = top-up or investment within the window.
    "broadcast_recipients",
    metadata,
    Column("broadcast_id", Id, ForeignKey("broadcasts.id"), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id"), primary_key=True),
    Column("outbox_id", Id, nullable=True),
    Column("queued_at", UtcDateTime, nullable=False),
    Column("converted_at", UtcDateTime, nullable=True),
    Column("conversion", String(16), nullable=True),  # top_up | investment
    Index("ix_broadcast_recipients_user", "user_id", "queued_at"),
)

leases = Table(
    # Work only one process may do at a time (the Telegram sender, the SQLite dispatcher):
    # held by ``holder`` until ``until``, renewed while it runs, taken over when it lapses.
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("until", UtcDateTime, nullable=False),
)

# --- analytics rollups (migration 0009) --------------------------------------------------------
# Derived data, rebuilt from the rows above by ``core.analytics.rollups.rebuild``; see
# docs/metrics.md "Rollups". Missing channel / campaign is stored as "" (part of the key).

analytics_daily = Table(
    "analytics_daily",
    metadata,
    Column("day", Date, primary_key=True),  # business date of the event (uow.clock.tz)
    Column("name", String(64), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("campaign", String(64), primary_key=True),
    Column("events", Integer, nullable=False),
    Column("amount", Amount, nullable=False),  # sum of props["amount"] where present
)

analytics_book_daily = Table(
    "analytics_book_daily",
    metadata,
    Column("day", Date, primary_key=True),  # the book at the end of this business day
    Column("channel", String(32), primary_key=True),  # the borrower's first touch
    Column("campaign", String(64), primary_key=True),
    Column("cohort", String(7), primary_key=True),  # disbursement month, YYYY-MM
    Column("state", String(16), primary_key=True),  # a bucket, or written_off
    Column("loans", Integer, nullable=False),
    Column("principal", Amount, nullable=False),  # outstanding (written off: not recovered)
    Column("interest", Amount, nullable=False),
    Column("overdue_principal", Amount, nullable=False),
    Column("overdue_interest", Amount, nullable=False),
    Column("overdue_beyond_30", Amount, nullable=False),
    Column("overdue_beyond_90", Amount, nullable=False),
)

analytics_rollup_days = Table(
    "analytics_rollup_days",
    metadata,
    Column("kind", String(16), primary_key=True),  # book
    Column("day", Date, primary_key=True),
    Column("built_at", UtcDateTime, nullable=False),
)

# range reads of the dashboards (a page costs what its dates cost, not what the history costs)
Index("ix_users_registered_at", users.c.registered_at)
Index("ix_channel_identities_first_seen_at", channel_identities.c.first_seen_at)
Index("ix_inbound_log_at", inbound_log.c.at)
Index("ix_chat_messages_at", chat_messages.c.at)
Index("ix_bids_created_at", bids.c.created_at)
Index("ix_loans_disbursed_at", loans.c.disbursed_at)
Index("ix_repayments_received_at", repayments.c.received_at)
Index("ix_payment_orders_created_at", payment_orders.c.created_at)
Index("ix_servicing_tasks_created_at", servicing_tasks.c.created_at)

# --- analytics rollups, per person and per day of the book (migration 0009) --------------------

analytics_milestones = Table(
    "analytics_milestones",
    metadata,
    # when each person first reached each funnel milestone (core/analytics/milestones.py); a
    # person with none has no row
    Column("user_id", Id, primary_key=True, autoincrement=False),
    Column("verified_at", UtcDateTime, nullable=True, index=True),
    Column("card_bound_at", UtcDateTime, nullable=True, index=True),
    Column("risk_assessed_at", UtcDateTime, nullable=True, index=True),
    Column("first_investment_at", UtcDateTime, nullable=True, index=True),
    Column("repeat_investment_at", UtcDateTime, nullable=True, index=True),
    Column("first_bid_id", Id, nullable=True),  # the bid of the first investment
)

analytics_roll_monthly = Table(
    "analytics_roll_monthly",
    metadata,
    # loans on the book at the month-end before ``day`` (a month-end) by bucket, and their state
    # at ``day``: roll rates
    Column("day", Date, primary_key=True),
    Column("channel", String(32), primary_key=True),  # the borrower's first touch
    Column("campaign", String(64), primary_key=True),
    Column("from_state", String(16), primary_key=True),
    Column("to_state", String(16), primary_key=True),
    Column("loans", Integer, nullable=False),
    Column("principal", Amount, nullable=False),  # outstanding at the earlier month-end
)

analytics_overdue_loans = Table(
    "analytics_overdue_loans",
    metadata,
    # the loans with an overdue amount at the end of ``day`` (collections recovery)
    Column("day", Date, primary_key=True),
    Column("loan_id", Id, primary_key=True, autoincrement=False),
    Column("channel", String(32), nullable=False),
    Column("campaign", String(64), nullable=False),
    Column("overdue", Amount, nullable=False),  # unpaid principal + interest of late ones
)

analytics_disclosure_daily = Table(
    "analytics_disclosure_daily",
    metadata,
    # the platform-wide figures of the disclosure page that need each borrower and lender, at
    # the end of ``day`` (month-ends and today)
    Column("day", Date, primary_key=True),
    Column("lending", Amount, nullable=False),  # principal of loans disbursed by then
    Column("loans", Integer, nullable=False),
    Column("borrowers", Integer, nullable=False),
    Column("lent", Amount, nullable=False),  # active bids in loans disbursed by then
    Column("lenders", Integer, nullable=False),
    Column("current_lenders", Integer, nullable=False),
    Column("current_borrowers", Integer, nullable=False),
    Column("owed", Amount, nullable=False),  # borrowers' principal + interest to repay
    Column("owed_top10", Amount, nullable=False),
    Column("owed_top1", Amount, nullable=False),
    Column("claims", Amount, nullable=False),  # lenders' claims
    Column("claims_top10", Amount, nullable=False),
    Column("claims_top1", Amount, nullable=False),
)
