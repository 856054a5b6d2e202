"""Small SQL helpers that differ by dialect."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from core.adapters.uow import UnitOfWork


def insert_ignore(uow: UnitOfWork, table: Table, values: dict[str, Any] | list[dict[str, Any]],
                  conflict: list[str]) -> Insert:
    """INSERT that silently keeps the existing row when ``conflict`` columns collide."""
    dialect_insert = postgresql.insert if uow.dialect == "postgresql" else sqlite.insert
    return dialect_insert(table).values(values).on_conflict_do_nothing(index_elements=conflict)
