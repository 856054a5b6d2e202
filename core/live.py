"""Live updates between the parts of the product (and between ``serve`` processes).

A tiny publish/subscribe bus for "something changed, look again" signals: a conversation got a
message (``conversation:<id>``), the human queue changed (``queue``), an agent's load changed
(``staff:<id>``). Messages are small JSON objects; the database stays the source of truth, so a
subscriber that misses a signal (a restart, a slow consumer) loses nothing but latency: it reads
what is new when it next looks.

- ``LocalBus``: one process (the embedded SQLite default).
- ``RedisBus``: several ``serve`` processes (``P2P_REDIS_URL``), Redis pub/sub on one channel
  prefix; each process runs one reader that fans messages out to its local subscribers, and its
  own messages come back through Redis like everyone else's.

Publish after the transaction that made the change has committed (``uow.after_commit``), so a
subscriber that looks finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger(__name__)
QUEUE_SIZE = 256  # a subscriber this far behind loses the oldest signals (it re-reads anyway)


class Subscription:
    """Messages of some topics, as an async iterator: ``async for topic, message in sub``."""

    def __init__(self, bus: LocalBus, topics: tuple[str, ...]) -> None:
        self.bus = bus
        self.topics = topics
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(QUEUE_SIZE)

    def offer(self, topic: str, message: dict[str, Any]) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait((topic, message))

    async def get(self) -> tuple[str, dict[str, Any]]:
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        while True:
            yield await self.queue.get()

    def close(self) -> None:
        self.bus._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalBus:
    """Publish/subscribe within one process."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, *topics: str) -> Subscription:
        subscription = Subscription(self, topics)
        for topic in topics:
            self._subscribers[topic].add(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        for topic in subscription.topics:
            self._subscribers[topic].discard(subscription)
            if not self._subscribers[topic]:
                del self._subscribers[topic]

    async def publish(self, topic: str, message: dict[str, Any] | None = None) -> None:
        self._fan_out(topic, message or {})

    def _fan_out(self, topic: str, message: dict[str, Any]) -> None:
        for subscription in list(self._subscribers.get(topic, ())):
            subscription.offer(topic, message)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()


class RedisBus(LocalBus):
    """Publish/subscribe across processes through Redis."""

    def __init__(self, url: str, prefix: str = "p2p:live:") -> None:
        super().__init__()
        import redis.asyncio as redis

        self.url = url
        self.prefix = prefix
        self._redis = redis.from_url(url)
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_forever(), name="live-bus-redis")
            await asyncio.wait_for(self._ready.wait(), 10)

    async def publish(self, topic: str, message: dict[str, Any] | None = None) -> None:
        await self.start()
        await self._redis.publish(self.prefix + topic, json.dumps(message or {}))

    async def _read_forever(self) -> None:
        while True:
            try:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.psubscribe(self.prefix + "*")
                self._ready.set()
                async for item in self._pubsub.listen():
                    if item.get("type") != "pmessage":
                        continue
                    channel = item["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    try:
                        message = json.loads(item["data"])
                    except (TypeError, ValueError):
                        continue
                    self._fan_out(channel[len(self.prefix):], message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live bus lost Redis; reconnecting")
                await asyncio.sleep(1)
            finally:
                if self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.aclose()
                    self._pubsub = None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._redis.aclose()
        await super().close()


def make_bus(redis_url: str | None) -> LocalBus:
    return RedisBus(redis_url) if redis_url else LocalBus()
