"""The HTTP server through its real app factory."""

from __future__ import annotations

import dataclasses

from bots.server import create_app
from core.adapters.db import create_engine
from core.adapters.uow import UnitOfWorkFactory


async def test_healthz_reports_the_database_is_up(core, aiohttp_client):
    client = await aiohttp_client(create_app(core, close_core=False, background=False))
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_healthz_says_unavailable_when_the_database_does_not_answer(core, aiohttp_client):
    unreachable = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    broken = dataclasses.replace(core, engine=unreachable,
                                 uow=UnitOfWorkFactory(unreachable, core.clock))
    client = await aiohttp_client(create_app(broken, close_core=False, background=False))
    response = await client.get("/healthz")
    assert response.status == 503
    assert (await response.json()) == {"status": "unavailable", "database": "down"}
    await unreachable.dispose()


async def test_the_custody_bank_callback_route_applies_a_signed_callback_once(core,
                                                                              aiohttp_client):
    from decimal import Decimal

    from core.domain.money import Money
    from tests.integration.accounts_helpers import onboard

    client = await aiohttp_client(create_app(core, close_core=False, background=False))
    person = await onboard(core)
    async with core.uow() as uow:
        order = await core.wallet.request_top_up(uow, person.user_id,
                                                 Money.of(Decimal("100.00")), "k")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        ref = (await core.wallet.order(uow, order.id)).bank_ref
    callback = core.bank.callback(ref, order.id, "top_up", Decimal("100.00"), "succeeded")
    forged = {"payload": {**callback["payload"], "amount": "1000000.00"},
              "signature": callback["signature"]}
    refused = await client.post("/callbacks/custody", json=forged)
    assert refused.status == 400
    first = await client.post("/callbacks/custody", json=callback)
    again = await client.post("/callbacks/custody", json=callback)
    assert (await first.json())["outcome"] == "applied"
    assert (await again.json())["outcome"] == "duplicate"
    async with core.uow(read_only=True) as uow:
        assert (await core.wallet.summary(uow, person.user_id)).available == Money.of(
            Decimal("100.00"))
