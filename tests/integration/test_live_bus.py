"""The live-update bus: in one process, and across processes through the real Redis."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from core.live import LocalBus, RedisBus

REDIS_URL = os.environ.get("P2P_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_a_subscriber_gets_the_messages_of_its_topics_only():
    bus = LocalBus()
    with bus.subscribe("conversation:1", "queue") as sub:
        await bus.publish("conversation:2", {"n": 0})
        await bus.publish("conversation:1", {"n": 1})
        await bus.publish("queue", {"n": 2})
        assert [await sub.get(), await sub.get()] == [("conversation:1", {"n": 1}),
                                                      ("queue", {"n": 2})]
        assert sub.queue.empty()
    await bus.publish("queue", {"n": 3})  # closed: nobody listens, nothing breaks
    await bus.close()


async def test_a_slow_subscriber_keeps_the_newest_signals():
    bus = LocalBus()
    with bus.subscribe("queue") as sub:
        for n in range(300):
            await bus.publish("queue", {"n": n})
        first = await sub.get()
        assert first[1]["n"] == 300 - sub.queue.maxsize  # the oldest were dropped
    await bus.close()


async def test_two_processes_see_each_others_messages_through_redis():
    prefix = f"p2p:test:{uuid.uuid4().hex}:"
    one, two = RedisBus(REDIS_URL, prefix), RedisBus(REDIS_URL, prefix)
    try:
        await one.start()
        await two.start()
    except (OSError, TimeoutError) as exc:  # pragma: no cover - CI always has Redis
        await one.close()
        await two.close()
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    try:
        with one.subscribe("conversation:7") as here, two.subscribe("conversation:7") as there:
            await one.publish("conversation:7", {"message": 42})
            assert await asyncio.wait_for(there.get(), 5) == ("conversation:7", {"message": 42})
            assert await asyncio.wait_for(here.get(), 5) == ("conversation:7", {"message": 42})
    finally:
        await one.close()
        await two.close()
