"""The schema, as SQLAlchemy Core tables. Alembic migrations under ``core/migrations`` create it.

Rules are checked twice: in code (named errors) and here (constraints), so a bug or a hand-made
edit cannot put the data into a state the code would refuse.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from core.adapters.types import Amount, Id, Json, UtcDateTime

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
