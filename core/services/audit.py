"""Audit log: who did what to which record, and when. Append-only."""

from __future__ import annotations

from typing import Any

from core.adapters.tables import audit_log
from core.adapters.uow import UnitOfWork


async def record(uow: UnitOfWork, action: str, subject_kind: str, subject_id: object, *,
                 actor_kind: str = "system", actor_id: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
    await uow.conn.execute(audit_log.insert().values(
        actor_kind=actor_kind, actor_id=actor_id, action=action, subject_kind=subject_kind,
        subject_id=str(subject_id), details=details, at=uow.clock.now()))
