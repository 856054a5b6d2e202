"""Group commit: many logical operations share one transaction, none fails its neighbours.

SQLite through SQLAlchemy async costs about a third of a millisecond per statement and a commit
(an fsync in the worst case) per message; a bot that commits once per message is capped at a few
hundred messages per second. ``GroupCommitter.run(op)`` queues ``op`` (an async function taking a
unit of work); a flusher runs the queued operations one after another in a single transaction and
commits once. If one raises, the transaction is rolled back, that caller gets the exception, and
the others are run again without it (so an operation must not have side effects outside the unit
of work - they go through the outbox). After a few failures in one batch the rest run one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.adapters.uow import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)
T = TypeVar("T")
Req = TypeVar("Req")
Res = TypeVar("Res")
Operation = Callable[[UnitOfWork], Awaitable[Any]]


@dataclass(slots=True)
class _Queued(Generic[Req]):
    item: Req
    future: asyncio.Future[Any]


class _Batcher(Generic[Req]):
    """A queue that a single flusher task empties in batches: callers wait for their result."""

    name = "batcher"

    def __init__(self, uow_factory: UnitOfWorkFactory, *, max_batch: int,
                 max_delay: float) -> None:
        self._uow = uow_factory
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._queue: list[_Queued[Req]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def _enqueue(self, item: Req) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(item, future))
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_forever(), name=self.name)
        return await future

    async def close(self) -> None:
        """Finish what is queued, then stop the flusher."""
        if self._task is not None:
            await asyncio.gather(*(q.future for q in self._queue), return_exceptions=True)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _flush_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self.max_delay and len(self._queue) < self.max_batch:
                await asyncio.sleep(self.max_delay)  # let concurrent callers join this batch
            while self._queue:
                batch, self._queue = (self._queue[: self.max_batch],
                                      self._queue[self.max_batch:])
                await self._flush(batch)

    async def _flush(self, batch: list[_Queued[Req]]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class GroupCommitter(_Batcher[Operation]):
    name = "group-commit"

    def __init__(self, uow_factory: UnitOfWorkFactory, *, max_batch: int = 256,
                 max_delay: float = 0.001, max_failures: int = 3) -> None:
        super().__init__(uow_factory, max_batch=max_batch, max_delay=max_delay)
        self.max_failures = max_failures
        self.operations = 0

    async def run(self, op: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """Run ``op`` in a shared transaction; return its result once that transaction committed."""
        return await self._enqueue(op)  # type: ignore[no-any-return]

    async def _flush(self, batch: list[_Queued[Operation]]) -> None:
        pending = [q for q in batch if not q.future.done()]
        failures = 0
        while pending and failures < self.max_failures:
            results: list[Any] = []
            failed: tuple[_Queued, BaseException] | None = None
            try:
                async with self._uow() as uow:
                    for item in pending:
                        mark = len(uow.independent)
                        try:
                            results.append(await item.item(uow))
                        except Exception as exc:  # handed to the caller
                            failed = (item, exc)
                            # the others run again without it and queue their own writes
                            # again: keep only what the failing operation asked for
                            del uow.independent[:mark]
                            break
                    if failed is None:
                        await uow.commit()
            except Exception as exc:  # the commit itself failed: run each one alone
                log.warning("group commit of %d operations failed: %s", len(pending), exc)
                break
            if failed is None:
                self.batches += 1
                self.operations += len(pending)
                for item, result in zip(pending, results, strict=True):
                    _resolve(item.future, result)
                return
            item, exc = failed
            _reject(item.future, exc)
            pending = [q for q in pending if q is not item]
            failures += 1
        for item in pending:  # one transaction each: slow, but only after repeated failures
            await self._run_alone(item)

    async def _run_alone(self, item: _Queued[Operation]) -> None:
        try:
            async with self._uow() as uow:
                result = await item.item(uow)
                await uow.commit()
        except Exception as exc:  # handed to the caller
            _reject(item.future, exc)
        else:
            self.batches += 1
            self.operations += 1
            _resolve(item.future, result)


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _reject(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class Coalescer(_Batcher[Req], Generic[Req, Res]):
    """Collect concurrent requests and hand them to a bulk handler in one transaction.

    Where ``GroupCommitter`` runs operations one after another in a shared transaction, a
    coalescer gives the whole batch to one function that reads what it needs once and writes in
    bulk (``Investing.invest_many``). The handler returns one result or exception per request,
    in order, and must refuse bad requests individually; if it raises, each request is retried
    alone so one poisoned request cannot fail the rest.
    """

    name = "coalescer"

    def __init__(self, uow_factory: UnitOfWorkFactory,
                 handler: Callable[[UnitOfWork, list[Req]], Awaitable[list[Res | Exception]]],
                 *, max_batch: int = 500, max_delay: float = 0.001) -> None:
        super().__init__(uow_factory, max_batch=max_batch, max_delay=max_delay)
        self._handler = handler

    async def submit(self, request: Req) -> Res:
        return await self._enqueue(request)  # type: ignore[no-any-return]

    async def _flush(self, batch: list[_Queued[Req]]) -> None:
        try:
            async with self._uow() as uow:
                results = await self._handler(uow, [q.item for q in batch])
                await uow.commit()
        except Exception as exc:
            log.warning("coalesced batch of %d failed (%s); retrying one by one",
                        len(batch), exc)
            if len(batch) == 1:
                _reject(batch[0].future, exc)
                return
            for item in batch:
                await self._flush([item])
            return
        self.batches += 1
        for queued, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                _reject(queued.future, result)
            else:
                _resolve(queued.future, result)
