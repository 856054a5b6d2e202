"""``serve`` killed with SIGKILL in the middle of sending notices, then started again.

The outbox promises at-least-once delivery with a narrow "at least": a process killed at any
instant loses no notice and, after the restart, sends nothing the Bot API had already confirmed
and the sender had written down; only a message in flight at the kill may go twice. Here a real
``run.py serve`` sends 300 notices to a local Bot API server at a fixed pace, is killed a third
of the way through, and a second ``serve`` on the same database finishes the job.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select

from bots.telegram.adapter import SEND_CONNECTIONS
from bots.telegram.local_api import LocalBotApi
from core.adapters.tables import channel_identities, deliveries, outbox, users
from core.bootstrap import Core
from core.domain.clock import SystemClock
from core.notify import enqueue_many
from tests.support import DATA_KEY, SECRET_KEY, make_core

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:ABCcrash-test_token"
USERS, PER_USER = 150, 2
NOTICES = USERS * PER_USER
KILL_AFTER = NOTICES // 3  # messages the Bot API has received when the first server dies
FIRST_CHAT = 710_000_000
APPLICATION = re.compile(r"APP-\d{4}")

# The pace: fast enough to finish in seconds, slow enough to be caught mid-way. The delivery
# lease is twice the time a live process needs for what it claimed (the second one sends ~200
# messages in ~3 s: a burst of PER_SECOND, then PER_SECOND a second): a sender re-claims
# its own unsent messages when their lease lapses and would send them twice, which is not the
# crash this test is about. The restart waits for the dead process's lease anyway.
PER_SECOND = 50
DELIVERY_LEASE_SECONDS = 6  # a dead process's claim is due again after this
SENDER_LEASE_SECONDS = 2  # the minimum; the restarted process takes the sender over after this

# How many messages can be "in flight" at the kill: received by the Bot API but not yet
# written down as sent (``TelegramSender``). A message is in one of three places then:
#   - its sendMessage has no answer yet: at most SEND_CONNECTIONS (the sender's semaphore);
#   - answered, in ``confirmed``, waiting for the next write, which comes CONFIRM_INTERVAL
#     after the previous write committed;
#   - in the batch being written at the kill.
# The last two are the messages answered since the last committed write took its batch: that
# write's commit, the interval, and the write in progress, i.e. CONFIRM_INTERVAL plus two
# commits. We allow each commit COMMIT_ALLOWANCE (a few milliseconds on an idle machine; a
# loaded CI runner gets a wide margin). The token bucket is drained by then (the kill comes
# well after its initial burst), so at most PER_SECOND a second are sent in that time, plus the
# one token it may hold.
CONFIRM_INTERVAL = 0.05  # ``TelegramSender._confirm_forever``
COMMIT_ALLOWANCE = 0.25
IN_FLIGHT_BOUND = (SEND_CONNECTIONS
                   + math.ceil(PER_SECOND * (CONFIRM_INTERVAL + 2 * COMMIT_ALLOWANCE)) + 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# File access stays out of the coroutines (ruff's ASYNC rules): logs are small, read on failure.
def _open_log(path: Path) -> IO[str]:
    return path.open("a")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def seed(core: Core) -> dict[str, str]:
    """USERS users, each reachable in an English Telegram chat, with PER_USER notices each;
    the answer maps each notice's application id (printed in its text) to its chat."""
    # Users and chats are written directly: signing 150 users up through the bot (phone codes,
    # consents) would test registration, not delivery, and spend the time budget on it.
    async with core.uow() as uow:
        now = uow.clock.now()
        result = await uow.conn.execute(
            users.insert().returning(users.c.id, sort_by_parameter_order=True),
            [{"created_at": now, "locale": "en"} for _ in range(USERS)])
        user_ids = [int(row.id) for row in result.all()]
        chats = {user_id: str(FIRST_CHAT + n) for n, user_id in enumerate(user_ids)}
        await uow.conn.execute(channel_identities.insert(), [
            {"channel": "telegram", "external_id": chat, "user_id": user_id, "locale": "en",
             "first_seen_at": now, "last_seen_at": now} for user_id, chat in chats.items()])
        for user_id in user_ids:  # application_result is not urgent: no quiet hours to wait out
            await core.notifications.set_quiet_hours(uow, user_id, "off")
        notices = [{"user_id": user_ids[n // PER_USER], "template": "application_result",
                    "params": {"application_id": f"APP-{n:04d}"}, "dedupe_key": f"crash:{n}"}
                   for n in range(NOTICES)]
        await enqueue_many(uow, notices)
        await uow.commit()
    return {n["params"]["application_id"]: chats[n["user_id"]] for n in notices}


def received(api: LocalBotApi) -> list[tuple[str, str]]:
    """Every message the Bot API accepted, in order, as (chat, application id or whole text)."""
    found = []
    for call in api.calls_to("sendMessage"):
        if call.status == 200:
            text = str(call.params.get("text", ""))
            match = APPLICATION.search(text)
            found.append((str(call.chat_id), match.group(0) if match else text))
    return found


async def written_as_sent(core: Core) -> set[tuple[str, str]]:
    """The messages whose confirmation is committed in the database."""
    d = deliveries.c
    async with core.uow(read_only=True) as uow:
        rows = (await uow.conn.execute(
            select(d.chat_id, d.text).where(d.status == "sent"))).all()
    return {(row.chat_id, APPLICATION.search(row.text).group(0)) for row in rows}


async def statuses(core: Core, column: ColumnElement[str]) -> Counter[str]:
    async with core.uow(read_only=True) as uow:
        rows = (await uow.conn.execute(
            select(column, func.count()).group_by(column))).all()
    return Counter({str(status): int(count) for status, count in rows})


async def serve(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    out = _open_log(log)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "run.py"), "serve", cwd=log.parent, env=env,
            stdout=out, stderr=subprocess.STDOUT)
    finally:
        out.close()  # the child has its own copy


async def until(ready: Callable[[], object], server: asyncio.subprocess.Process, log: Path,
                what: str, seconds: float, poll: float = 0.01) -> None:
    """Poll ``ready`` (sync or async) until true; fail at once if the server exits."""
    async with asyncio.timeout(seconds):
        while True:
            done = ready()
            if asyncio.iscoroutine(done):
                done = await done
            if done:
                return
            assert server.returncode is None, f"serve exited ({server.returncode}) before " \
                                              f"{what}:\n{_tail(log)}"
            await asyncio.sleep(poll)


async def test_a_server_killed_mid_batch_loses_no_notice_and_resends_only_what_was_in_flight(
        database_url, tmp_path):
    core = await make_core(database_url, SystemClock(ZoneInfo("Asia/Shanghai")), tmp_path)
    try:
        chat_of = await seed(core)
        expected = {(chat, application) for application, chat in chat_of.items()}
        async with LocalBotApi(tokens=[TOKEN]) as api:
            env = {**os.environ, "P2P_DATABASE_URL": database_url, "P2P_DATA_DIR": str(tmp_path),
                   "P2P_SECRET_KEY": SECRET_KEY, "P2P_DATA_KEY": DATA_KEY,
                   "P2P_HTTP_PORT": str(free_port()), "P2P_LOCALE": "en",
                   "P2P_TELEGRAM_TOKEN": TOKEN, "P2P_TELEGRAM_API_URL": f"{api.url}/bot",
                   "P2P_DELIVERY__PER_SECOND": str(PER_SECOND),
                   "P2P_DELIVERY__PER_CHAT_INTERVAL_MS": "0",
                   "P2P_DELIVERY__LEASE_SECONDS": str(DELIVERY_LEASE_SECONDS),
                   "P2P_NOTIFY__LEASE_SECONDS": str(SENDER_LEASE_SECONDS),
                   "P2P_NOTIFY__POLL_SECONDS": "0.2"}

            first_log = tmp_path / "serve-1.log"
            first = await serve(env, first_log)
            try:
                await until(lambda: len(received(api)) >= KILL_AFTER, first, first_log,
                            f"{KILL_AFTER} messages were sent", 60)
            finally:
                os.kill(first.pid, signal.SIGKILL)  # no clean-up of any kind
                at_kill = len(received(api))
                await first.wait()
            await asyncio.sleep(0.5)  # requests already on the wire still reach the Bot API
            before = received(api)
            unconfirmed = set(before) - await written_as_sent(core)
            assert at_kill < NOTICES, "the first server finished before it could be killed"

            second_log = tmp_path / "serve-2.log"
            second = await serve(env, second_log)
            try:
                async def all_sent() -> bool:
                    return (await statuses(core, outbox.c.status)) == {"sent": NOTICES}

                await until(all_sent, second, second_log, "every notice was sent", 60, 0.2)
                count = -1
                while count != len(received(api)):  # and nothing more comes for a second
                    count = len(received(api))
                    await asyncio.sleep(1)
            finally:
                if second.returncode is None:
                    second.send_signal(signal.SIGTERM)
                returncode = await asyncio.wait_for(second.wait(), 30)
            assert returncode == 0, _tail(second_log)
            after = received(api)
            resent = [call.at for call in api.calls_to("sendMessage")
                      if call.status == 200][len(before):]
            notices = await statuses(core, outbox.c.status)
            messages = await statuses(core, deliveries.c.status)
    finally:
        await core.close()

    times = Counter(after)
    duplicated = {message for message, n in times.items() if n > 1}
    first_after_restart = set(after[len(before):]) - set(before)
    print(f"received at the kill {at_kill}, before the restart {len(before)}, unconfirmed "
          f"{len(unconfirmed)}, sent twice {len(duplicated)} (bound {IN_FLIGHT_BOUND}); the "
          f"restarted server sent {len(resent)} in {resent[-1] - resent[0] if resent else 0:.1f} s")
    assert notices == {"sent": NOTICES}, "notices left pending, queued, deferred or failed"
    assert messages == {"sent": NOTICES}, "each notice handed over once, and confirmed"
    assert set(times) == expected, "lost or unexpected messages"
    assert max(times.values()) <= 2, "a message went three times"
    assert len(set(before)) == len(before), "the first server sent a message twice"
    assert duplicated <= unconfirmed, "a message written down as sent was sent again"
    assert not duplicated & first_after_restart, "a message first sent after the restart went twice"
    assert len(duplicated) <= IN_FLIGHT_BOUND, (
        f"{len(duplicated)} messages went twice, more than the {IN_FLIGHT_BOUND} that can be "
        f"in flight ({at_kill} received at the kill, {len(unconfirmed)} unconfirmed)")
    assert first_after_restart, "the restarted server sent nothing"
