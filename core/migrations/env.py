"""Alembic environment: runs on the connection ``core.adapters.migrate`` hands over."""

from __future__ import annotations

from alembic import context

from core.adapters.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - we always migrate through core.adapters.migrate
    raise RuntimeError("run migrations with `python run.py migrate`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
