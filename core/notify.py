"""Outbox: notices written in the same transaction as the business change that causes them.

``enqueue`` only appends; the dispatcher (a later part of the product) delivers pending notices to
the user's channel. The dedupe key makes a notice unique: enqueueing it twice keeps the first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.adapters.sql import insert_ignore
from core.adapters.tables import outbox
from core.adapters.uow import UnitOfWork


async def enqueue(uow: UnitOfWork, user_id: int | None, template: str, params: dict[str, Any],
                  dedupe_key: str, not_before: datetime | None = None) -> int:
    """Add a notice unless one with ``dedupe_key`` exists; return the notice's id either way."""
    if not dedupe_key or len(dedupe_key) > 200:
        raise ValueError("a dedupe key of 1-200 characters is required")
    now = uow.clock.now()
    await uow.conn.execute(insert_ignore(uow, outbox, {
        "user_id": user_id, "template": template, "params": params, "dedupe_key": dedupe_key,
        "not_before": not_before or now, "created_at": now, "status": "pending", "attempts": 0,
    }, conflict=["dedupe_key"]))
    row = (await uow.conn.execute(
        select(outbox.c.id).where(outbox.c.dedupe_key == dedupe_key))).one()
    return int(row.id)


async def enqueue_many(uow: UnitOfWork, notices: list[dict[str, Any]]) -> None:
    """Add many notices with one statement; ones whose dedupe key exists are skipped."""
    if not notices:
        return
    now = uow.clock.now()
    rows = [{"user_id": n["user_id"], "template": n["template"], "params": n["params"],
             "dedupe_key": n["dedupe_key"], "not_before": n.get("not_before") or now,
             "created_at": now, "status": "pending", "attempts": 0} for n in notices]
    await uow.conn.execute(insert_ignore(uow, outbox, conflict=["dedupe_key"]), rows)
