"""Leases: work that only one process may do at a time, taken over when its holder stops.

The Telegram sender keeps the bot's overall and per-chat pace in memory, so exactly one process
sends; on SQLite one process dispatches notices. A process ``acquire``s the lease for a while
and renews it as it works; if it dies, the lease lapses and another process takes the work over.
``acquire`` is one conditional write, so two processes asking at once cannot both win.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import delete, update

from core.adapters.sql import insert_ignore
from core.adapters.tables import leases
from core.adapters.uow import UnitOfWork


def holder_id() -> str:
    """This process, readable in the table: host, pid and a random part."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def acquire(uow: UnitOfWork, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew ``name`` for ``ttl``; False while another holder's lease runs."""
    now = uow.clock.now()
    until = now + ttl
    inserted = await uow.conn.execute(insert_ignore(uow, leases, {
        "name": name, "holder": holder, "until": until}, conflict=["name"]))
    if inserted.rowcount:
        return True
    c = leases.c
    taken = await uow.conn.execute(update(leases).where(
        c.name == name, (c.holder == holder) | (c.until < now)).values(holder=holder, until=until))
    return bool(taken.rowcount)


async def release(uow: UnitOfWork, name: str, holder: str) -> None:
    await uow.conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))
