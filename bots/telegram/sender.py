"""Sending to Telegram from the deliveries queue, at the pace Telegram allows.

The sender claims due messages (``core.delivery.claim``), keeps one queue per chat and one
worker per chat with something to send, and reports each outcome back:

- pace: at most one message per ``delivery.per_chat_interval_ms`` to a chat and
  ``delivery.per_second`` in all, spread evenly (``SendPace``, shared by the workers);
- 429 (``RetryAfter``): that chat waits ``retry_after`` seconds, the others keep going;
- server errors and timeouts: retried with doubling backoff a few times, then the message goes
  back to the queue for later (the delay doubling with each claim, up to five minutes) and is
  dropped after ``delivery.max_attempts`` claims;
- 403 (``Forbidden``: the user blocked the bot): the chat's identity is marked unreachable and
  what waits for it is dropped; 400 (``BadRequest``): that message is dropped and logged;
- texts over 4,096 characters go as several messages (split at line breaks where possible; the
  buttons go under the last part); every text is HTML-escaped and sent with ``parse_mode=HTML``,
  so what users typed (echoed in summaries, agent messages) shows as typed.

Confirmations are written in small batches, about 20 ms after the send; a crash before one is
written means that message is sent again when its lease runs out (at-least-once).

One process sends for the bot: the pace is kept in this process's memory, so the sender holds
the ``telegram-sender`` lease (``core.leases``) while it claims and renews it as it goes; a
second ``serve`` process waits and takes over if the first one stops. Marketing (priority 2) is
claimed only while fewer than ``notify.marketing_in_flight`` marketing messages are held, so a
broadcast to many chats never queues ahead of replies and reminders.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time
from collections import deque
from datetime import timedelta
from typing import Any

import aiohttp
from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from config.settings import DeliverySettings
from core import delivery, leases
from core.adapters.uow import UnitOfWorkFactory
from core.delivery import Delivery

log = logging.getLogger(__name__)
CHANNEL = "telegram"
TEXT_LIMIT = 4096
CALLBACK_LIMIT = 64
CONTACT_REQUEST = "contact:request"
LEASE = "telegram-sender"
CONFIRM_EVERY = 0.02  # seconds between confirmation transactions, at most
STOP_WAIT = 15.0  # seconds a stopping sender waits for the answers to requests it sent
SEND_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=5, sock_read=10)


class SendPace:
    """Sends spread evenly: one every ``MARGIN / rate`` seconds; a slot's small delay does not
    move the next one, and time lost to a pause is not caught up with a burst. So no one-second
    window, here or where Telegram receives them, holds more than ``rate`` messages (the margin
    absorbs the network's and the event loop's jitter), and a crash finds few messages between
    send and confirm."""

    MARGIN = 1.02

    def __init__(self, rate: float) -> None:
        self.interval = self.MARGIN / rate
        self.next_at = 0.0
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:
            now = time.monotonic()
            if self.next_at - now > 0.0005:  # below that, the timer is coarser than the wait
                await asyncio.sleep(self.next_at - now)
                now = time.monotonic()
            # the next slot counts from this one's planned time when we woke a little late (a
            # timer's or a busy loop's slip is not lost), from now after a pause (no burst)
            late = now - self.next_at
            self.next_at = (self.next_at if late < self.interval / 2 else now) + self.interval


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Parts of at most ``limit`` characters, cut at a line break, else a space, else hard."""
    parts = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = text.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip("\n ")
    parts.append(text)
    return [p for p in parts if p] or [""]


def keyboard(buttons: list[dict[str, str]] | None) -> dict[str, Any] | None:
    """The ``reply_markup`` for ``buttons``, as the Bot API's JSON: an inline keyboard where
    short labels share a row (up to three) and long ones get their own. A button whose id would
    not fit Telegram's 64-byte callback data is left out. A request for the user's phone
    (``contact:request``) becomes Telegram's own "share contact" key under the input field
    instead (it cannot be an inline button). Plain dicts: building PTB's markup objects and
    serialising them cost about ten times as much, for the same JSON."""
    if not buttons:
        return None
    for button in buttons:
        if button["id"] == CONTACT_REQUEST:
            return {"keyboard": [[{"text": button["label"], "request_contact": True}]],
                    "resize_keyboard": True, "one_time_keyboard": True}
    rows: list[list[dict[str, str]]] = []
    width = 0
    for button in buttons:
        if len(button["id"].encode()) > CALLBACK_LIMIT:
            log.error("button id over 64 bytes left out: %r", button["id"])
            continue
        key = {"text": button["label"], "callback_data": button["id"]}
        size = len(button["label"])
        if rows and len(rows[-1]) < 3 and width + size <= 18 and size <= 8:
            rows[-1].append(key)
            width += size
        else:
            rows.append([key])
            width = size
    return {"inline_keyboard": rows} if rows else None


def seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramSender:
    def __init__(self, uow: UnitOfWorkFactory, bot: Bot, settings: DeliverySettings, *,
                 in_flight: int = 8, lease_seconds: int = 15, marketing: int = 30) -> None:
        self.uow = uow
        self.bot = bot
        self.settings = settings
        self.interval = settings.per_chat_interval_ms / 1000
        self.pace = SendPace(settings.per_second)
        # sends waiting on the HTTP pool cost CPU for nothing: at most as many as connections
        self.in_flight = asyncio.Semaphore(in_flight)
        self.in_flight_limit = in_flight
        self._http: aiohttp.ClientSession | None = None
        self.queues: dict[str, deque[Delivery]] = {}
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.ready_at: dict[str, float] = {}
        self.confirmed: list[tuple[int, str | None]] = []
        self.wakeup = asyncio.Event()
        self.confirm_wanted = asyncio.Event()
        self.flushed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.sent_count = 0
        self.holder = leases.holder_id()
        self.lease = timedelta(seconds=lease_seconds)
        self.lease_renewed = 0.0  # monotonic time of the last renewal; 0: not held
        self.marketing_cap = marketing
        self.marketing_held = 0
        # what this process holds (claimed, not yet sent or given up): never claimed twice, its
        # leases renewed while it waits its turn, and no more of it than the lease's worth
        self.held: set[int] = set()
        self.hold_limit = max(settings.batch, min(50_000, int(
            settings.per_second * settings.lease_seconds / 2)))
        self.leases_renewed = time.monotonic()
        self.stopping = False
        self.on_wire: set[asyncio.Task[Any]] = set()  # workers whose request was sent

    # Life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._claim_forever(), name="telegram-claims"),
                       asyncio.create_task(self._confirm_forever(), name="telegram-confirms")]

    async def stop(self) -> None:
        """Stop claiming and sending; let the requests already on the wire get their answers
        (at most ``STOP_WAIT`` seconds), write the confirmations, and hand back what was not
        sent so another process (or the next start) sends it. A message Telegram has is never
        handed back: the next sender would send it again."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        workers = list(self.workers.values())
        for task in workers:
            if task not in self.on_wire:
                task.cancel()  # waiting for its turn: nothing of it was sent
        on_wire = [task for task in workers if task in self.on_wire]
        if on_wire:
            await asyncio.wait(on_wire, timeout=STOP_WAIT)
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._write_confirmations()
        if self._http is not None:
            await self._http.close()
        left = [d.id for queue in self.queues.values() for d in queue]
        async with self.uow() as uow:
            if left:
                await delivery.release(uow, left)
            if self.lease_renewed:
                await leases.release(uow, LEASE, self.holder)
            await uow.commit()

    def poke(self) -> None:
        """Something was queued: claim it now rather than at the next poll."""
        self.wakeup.set()

    # Claiming -------------------------------------------------------------------------------

    async def _holds_lease(self) -> bool:
        """Take or renew the sender's lease (a third of its length after the last renewal)."""
        now = time.monotonic()
        if self.lease_renewed and now - self.lease_renewed < self.lease.total_seconds() / 3:
            return True
        async with self.uow() as uow:
            held = await leases.acquire(uow, LEASE, self.holder, self.lease)
            await uow.commit()
        if held and not self.lease_renewed:
            log.info("this process now sends for the Telegram bot (%s)", self.holder)
        self.lease_renewed = now if held else 0.0
        return held

    async def _claim_forever(self) -> None:
        lease = timedelta(seconds=self.settings.lease_seconds)
        while True:
            try:
                if not await self._holds_lease():
                    await asyncio.sleep(self.lease.total_seconds() / 3)
                    continue
                room = min(self.settings.batch, self.hold_limit - len(self.held))
                claimed = []
                if room > 0:
                    async with self.uow() as uow:
                        claimed = await delivery.claim(
                            uow, CHANNEL, room, lease,
                            marketing=max(0, self.marketing_cap - self.marketing_held))
                        await uow.commit()
            except Exception:
                log.exception("claiming telegram deliveries failed; retrying")
                claimed = []
            for item in claimed:
                if item.id in self.held:
                    continue  # ours already, waiting its turn (its lease had run out)
                self.held.add(item.id)
                if item.priority >= delivery.MARKETING:
                    self.marketing_held += 1
                self.queues.setdefault(item.chat_id, deque()).append(item)
                if item.chat_id not in self.workers:
                    self.workers[item.chat_id] = asyncio.create_task(
                        self._work(item.chat_id), name=f"telegram-chat-{item.chat_id}")
            if len(claimed) < self.settings.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), 0.5)
                self.wakeup.clear()

    # Sending --------------------------------------------------------------------------------

    async def _work(self, chat_id: str) -> None:
        queue = self.queues[chat_id]
        try:
            while queue and not self.stopping:
                item = queue[0]
                wait = self.ready_at.get(chat_id, 0.0) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                outcome = await self._send(item)
                if outcome == "stopped":
                    break  # not sent: handed back by stop()
                if outcome == "again":
                    continue  # ready_at was moved by the rate limit
                self._done(queue.popleft(), confirming=outcome == "sent")
                if outcome == "blocked":
                    for left in queue:
                        self._done(left)
                    # shielded: a stopping sender must not cut this transaction in half
                    await asyncio.shield(self._unreachable(chat_id, queue))
                    break
        finally:
            if not queue:
                self.queues.pop(chat_id, None)
            self.workers.pop(chat_id, None)

    def _done(self, item: Delivery, *, confirming: bool = False) -> None:
        """The item left its chat's queue; a sent one stays held until its confirmation is
        written, so no claim can take it in between."""
        if not confirming:
            self.held.discard(item.id)
        if item.priority >= delivery.MARKETING:
            self.marketing_held -= 1
            if self.marketing_held < self.marketing_cap // 2:
                self.wakeup.set()  # room for more marketing

    async def _send(self, item: Delivery) -> str:
        """'sent', 'again' (wait and resend), 'dropped', 'later', 'blocked' or 'stopped'
        (the sender is stopping and nothing of the message was sent)."""
        parts = split_text(html.escape(item.text, quote=False))
        failures = 0
        done = 0
        while done < len(parts):
            last = done == len(parts) - 1
            try:
                # a connection first, then the pace: the moment the window records is the
                # moment the request leaves, not a moment before a wait for a connection
                async with self.in_flight:
                    await self.pace.take()
                    if self.stopping and not done:
                        return "stopped"
                    worker = asyncio.current_task()
                    assert worker is not None
                    self.on_wire.add(worker)  # no await since the check: stop() sees it
                    try:
                        message_id = await self._send_message(
                            item.chat_id, parts[done],
                            keyboard(item.buttons) if last else None)
                    finally:
                        self.on_wire.discard(worker)
            except RetryAfter as exc:
                self.ready_at[item.chat_id] = time.monotonic() + seconds(exc.retry_after)
                if done:  # the parts already sent stay sent; resend only the rest
                    parts = parts[done:]
                    done = 0
                    item = _rest(item, parts)
                    self.queues[item.chat_id][0] = item
                return "again"
            except Forbidden as exc:  # dropped with the rest of the chat's queue, below
                log.info("telegram chat %s blocked the bot: %s", item.chat_id, exc)
                return "blocked"
            except BadRequest as exc:
                log.error("telegram refused delivery %s to chat %s: %s", item.id, item.chat_id,
                          exc)
                await asyncio.shield(self._drop([item.id], f"bad request: {exc}"))
                return "dropped"
            except (TimedOut, NetworkError) as exc:
                failures += 1
                if failures >= min(3, self.settings.max_attempts):
                    await asyncio.shield(self._later(item, str(exc)))
                    return "later"
                await asyncio.sleep(self.settings.backoff_ms / 1000 * 2 ** (failures - 1))
                continue
            done += 1
            self.ready_at[item.chat_id] = time.monotonic() + self.interval
            if last:
                self.confirmed.append((item.id, message_id))
                self.confirm_wanted.set()
                self.sent_count += 1
        return "sent"

    async def _send_message(self, chat_id: str, text: str,
                            markup: dict[str, Any] | None) -> str:
        """``sendMessage`` straight to the Bot API; the message id Telegram gave it.

        The one hot call of the bot goes around ``Bot.send_message``: PTB builds a request
        object and a full ``Message`` for each answer, about 1 ms of CPU a message here, while
        the sender needs only the message id. Errors come back as PTB's own exceptions, as
        ``Bot`` would raise them, so the handling above is the same either way."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                limit=self.in_flight_limit))
        fields: dict[str, Any] = {"chat_id": chat_id, "text": text,
                                  "parse_mode": ParseMode.HTML.value}
        if markup is not None:
            fields["reply_markup"] = markup
        try:
            async with self._http.post(f"{self.bot.base_url}/sendMessage", json=fields,
                                       timeout=SEND_TIMEOUT) as response:
                status = response.status
                body = await response.json(content_type=None)
        except TimeoutError as exc:
            raise TimedOut from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise NetworkError(f"sendMessage: {exc.__class__.__name__}: {exc}") from exc
        if isinstance(body, dict) and body.get("ok"):
            return str(body["result"]["message_id"])
        description = str(body.get("description", "")) if isinstance(body, dict) else ""
        code = body.get("error_code", status) if isinstance(body, dict) else status
        if code == 429:
            retry = (body.get("parameters") or {}).get("retry_after", 1)
            raise RetryAfter(int(retry))
        if code == 403:
            raise Forbidden(description or "Forbidden")
        if code == 400:
            raise BadRequest(description or "Bad Request")
        raise NetworkError(f"sendMessage: {code} {description}")

    async def _unreachable(self, chat_id: str, queue: deque[Delivery]) -> None:
        """One transaction marks the chat unreachable and drops all it was waiting for (the
        message that met the 403 included): nobody sees one without the other."""
        queue.clear()
        async with self.uow() as uow:
            await delivery.unreachable(uow, CHANNEL, chat_id)
            await uow.commit()

    async def _drop(self, ids: list[int], error: str) -> None:
        async with self.uow() as uow:
            await delivery.drop(uow, ids, error)
            await uow.commit()

    async def _later(self, item: Delivery, error: str) -> None:
        async with self.uow() as uow:
            backoff = self.settings.backoff_ms / 1000 * 2 ** (item.attempts + 2)
            at = uow.clock.now() + timedelta(seconds=min(300.0, backoff))
            if item.attempts >= self.settings.max_attempts:
                await delivery.drop(uow, [item.id], f"gave up: {error}")
            else:
                await delivery.retry(uow, item.id, at, error)
            await uow.commit()

    # Confirmations --------------------------------------------------------------------------

    async def _confirm_forever(self) -> None:
        """Confirmations are written as soon as there are some, at most one transaction per
        ``CONFIRM_EVERY`` (what arrives meanwhile joins the next one): what Telegram accepted
        but we have not yet written down - all a crash could send twice - stays small."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.confirm_wanted.wait(), 1.0)
            self.confirm_wanted.clear()
            await asyncio.sleep(CONFIRM_EVERY)
            try:
                await self._write_confirmations()
                if time.monotonic() - self.leases_renewed > self.settings.lease_seconds / 3:
                    await self._renew_leases()
            except Exception:
                log.exception("writing telegram confirmations failed; retrying")

    async def _renew_leases(self) -> None:
        """Messages still waiting in this process (a slow chat, a long backlog) keep their
        lease, so no claim, ours or another process's, takes them while we hold them."""
        self.leases_renewed = time.monotonic()
        if self.held:
            async with self.uow() as uow:
                await delivery.extend(uow, list(self.held),
                                      timedelta(seconds=self.settings.lease_seconds))
                await uow.commit()

    async def _write_confirmations(self) -> None:
        if not self.confirmed:
            return
        batch, self.confirmed = self.confirmed, []
        try:
            async with self.uow() as uow:
                await delivery.sent(uow, batch)
                await uow.commit()
        except BaseException:
            self.confirmed = batch + self.confirmed
            raise
        self.held.difference_update(n for n, _ in batch)

    @property
    def idle(self) -> bool:
        return not self.queues and not self.confirmed


def _rest(item: Delivery, parts: list[str]) -> Delivery:
    """What is left of a long message after some of its parts went out (already escaped, so
    it is marked to be sent as is)."""
    return Delivery(item.id, item.channel, item.chat_id, html.unescape("\n".join(parts)),
                    item.buttons, item.kind, item.attempts)
