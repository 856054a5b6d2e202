"""Risk flags for staff review: anti-fraud (a shared identity, card or phone) and AML.

A flag is raised once per (kind, subject): the same shared card seen again does not stack up
duplicates in the review queue. Staff clear flags after review (the review queues come with the
console).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update

from core.adapters.sql import insert_ignore
from core.adapters.tables import risk_flags
from core.adapters.uow import UnitOfWork

log = logging.getLogger(__name__)
KINDS = frozenset({
    "duplicate_identity",  # an ID number already used by another account
    "shared_card",  # one bank card bound to several accounts
    "shared_phone",  # one reserved phone behind several accounts' cards
    "aml_large_top_up",  # a single top-up at or above the configured amount
    "aml_quick_in_out",  # topped up and withdrawn within hours without investing
    "use_of_funds_missing",  # a borrower did not prove the use of a business loan
})


async def raise_flag(uow: UnitOfWork, kind: str, subject_key: str, *, user_id: int | None,
                     details: dict[str, Any] | None = None) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown flag kind {kind}")
    await uow.conn.execute(insert_ignore(uow, risk_flags, {
        "kind": kind, "subject_key": subject_key[:128], "user_id": user_id, "details": details,
        "status": "open", "created_at": uow.clock.now(),
    }, conflict=["kind", "subject_key"]))
    log.info("risk flag %s raised for user %s", kind, user_id)


async def open_flags(uow: UnitOfWork, kind: str | None = None) -> list[dict[str, Any]]:
    f = risk_flags.c
    query = select(risk_flags).where(f.status == "open").order_by(f.created_at, f.id)
    if kind is not None:
        query = query.where(f.kind == kind)
    return [dict(r._mapping) for r in await uow.conn.execute(query)]


async def clear_flag(uow: UnitOfWork, flag_id: int, staff_id: int) -> None:
    f = risk_flags.c
    await uow.conn.execute(update(risk_flags).where(f.id == flag_id).values(
        status="cleared", reviewed_by=staff_id, reviewed_at=uow.clock.now()))
