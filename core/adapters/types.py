"""Column types shared by every table: exact money, aware UTC times, portable ids and JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments an ``INTEGER PRIMARY KEY`` (a rowid alias), not a BIGINT one.
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

STORAGE_SCALE = 4  # amounts are stored as integers of 1/10,000; money scales up to 4 fit


class Amount(TypeDecorator[Decimal]):
    """A Decimal stored as an exact integer of 1/10,000 units (SQLite has no exact decimal)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            value = Decimal(value) if isinstance(value, int) else Decimal(str(value.amount))
        scaled = value.scaleb(STORAGE_SCALE)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {STORAGE_SCALE} decimals")
        return int(scaled)

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return Decimal(int(value)).scaleb(-STORAGE_SCALE)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive storage) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one (use the Clock)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


RATIO_SCALE = 6


class Ratio(TypeDecorator[Decimal]):
    """A rate or share (0.085 = 8.5%) stored as an exact integer of millionths."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        scaled = Decimal(value).scaleb(RATIO_SCALE)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {RATIO_SCALE} decimals")
        return int(scaled)

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return Decimal(int(value)).scaleb(-RATIO_SCALE).normalize()
