"""The HTTP server through its real app factory."""

from __future__ import annotations

import dataclasses

from bots.server import create_app
from core.adapters.db import create_engine
from core.adapters.uow import UnitOfWorkFactory


async def test_healthz_reports_the_database_is_up(core, aiohttp_client):
    client = await aiohttp_client(create_app(core, close_core=False))
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_healthz_says_unavailable_when_the_database_does_not_answer(core, aiohttp_client):
    unreachable = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    broken = dataclasses.replace(core, engine=unreachable,
                                 uow=UnitOfWorkFactory(unreachable, core.clock))
    client = await aiohttp_client(create_app(broken, close_core=False))
    response = await client.get("/healthz")
    assert response.status == 503
    assert (await response.json()) == {"status": "unavailable", "database": "down"}
    await unreachable.dispose()
