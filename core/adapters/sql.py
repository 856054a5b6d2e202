"""Small SQL helpers that differ by dialect."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from core.adapters.uow import UnitOfWork


def insert_ignore(uow: UnitOfWork, table: Table, values: dict[str, Any] | None = None, *,
                  conflict: list[str]) -> Insert:
    """INSERT that silently keeps the existing row when ``conflict`` columns collide. Without
    ``values``, execute it with a list of rows (one executemany)."""
    dialect_insert = postgresql.insert if uow.dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(table)
    if values is not None:
        statement = statement.values(values)
    return statement.on_conflict_do_nothing(index_elements=conflict)
