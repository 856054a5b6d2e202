"""Segment broadcasts: a manager's message to the users a segment picks (precision marketing and
user care), sent through the outbox like every other notice.

A broadcast is a ``draft`` until it is sent now or ``scheduled`` for later; sending computes the
audience, writes one ``broadcast_recipients`` row and one outbox notice (template ``broadcast``,
dedupe key ``broadcast:<id>:<user>``) per user in chunks, each chunk its own transaction, so a
crash half-way resumes where it stopped (``resume``) and nobody is written twice. The
dispatcher applies the usual rules: marketing is muted by the user's choice and waits for the end
of quiet hours; the Telegram sender sends marketing after everything else, a few at a time.

Reach is the recipients; delivery is their notices' status; a recipient converts when a top-up
succeeds or an investment is made within ``notify.conversion_days`` of the message reaching
them (``attribute_conversions``, a daily step; each conversion is an analytics event).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, func, select, update

from config.settings import Settings
from core import analytics, notify
from core.adapters.sql import insert_ignore
from core.adapters.tables import (
    bids,
    broadcast_recipients,
    broadcasts,
    channel_identities,
    conversations,
    ledger_accounts,
    outbox,
    payment_orders,
    risk_profiles,
    users,
)
from core.adapters.uow import UnitOfWork, UnitOfWorkFactory
from core.domain.errors import InvalidBroadcast
from core.domain.risk_profile import LEVELS

# the buttons a broadcast may carry: chat actions every channel understands
BUTTONS = ("flow:top_up", "flow:browse", "flow:portfolio", "flow:auto_invest", "flow:apply",
           "flow:my_loans", "flow:kyc", "flow:card", "flow:risk", "talk_to_human")
ROLES = ("investor", "borrower")
RISK_LEVELS = LEVELS  # the investor's questionnaire level, C1 (conservative) .. C5
LOCALES = ("zh-CN", "en")
CHANNELS = ("telegram", "web")
TEXT_LIMIT = 1000


@dataclass(frozen=True)
class Segment:
    """Who a broadcast goes to; every condition set must hold (empty lists: any)."""

    role: str | None = None  # investor | borrower
    risk_levels: list[str] = field(default_factory=list)  # latest questionnaire level
    locales: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)  # a reachable chat on one of these
    min_idle_balance: Decimal | None = None  # available balance at least this
    inactive_days: int | None = None  # has not written for at least this many days
    no_first_investment: bool = False  # registered investors who never invested
    tiers: list[int] = field(default_factory=list)  # VIP tier by invested amount (0 regular)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        """A segment from a form or JSON; InvalidBroadcast(reason='segment') names the bad
        value."""
        def bad(detail: str) -> InvalidBroadcast:
            return InvalidBroadcast(reason="segment", detail=detail)

        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise bad(", ".join(sorted(unknown)))
        role = data.get("role") or None
        if role not in (None, *ROLES):
            raise bad(f"role={role}")
        lists = {}
        for name, allowed in (("risk_levels", RISK_LEVELS), ("locales", LOCALES),
                              ("channels", CHANNELS)):
            values = list(data.get(name) or [])
            if any(v not in allowed for v in values):
                raise bad(f"{name}={values}")
            lists[name] = values
        try:
            tiers = [int(t) for t in data.get("tiers") or []]
            balance = data.get("min_idle_balance")
            balance = Decimal(str(balance)) if balance not in (None, "") else None
            inactive = data.get("inactive_days")
            inactive = int(inactive) if inactive not in (None, "") else None
        except (ValueError, InvalidOperation, TypeError):
            raise bad("numbers") from None
        if balance is not None and (balance < 0 or not balance.is_finite()):
            raise bad(f"min_idle_balance={balance}")
        if inactive is not None and not 0 <= inactive <= 3650:
            raise bad(f"inactive_days={inactive}")
        if any(not 0 <= t <= 9 for t in tiers):
            raise bad(f"tiers={tiers}")
        return cls(role, lists["risk_levels"], lists["locales"], lists["channels"], balance,
                   inactive, bool(data.get("no_first_investment")), tiers)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["min_idle_balance"] = (str(self.min_idle_balance)
                                    if self.min_idle_balance is not None else None)
        return data


class Broadcasts:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.vip = sorted(settings.support.vip_invested)

    # Writing ----------------------------------------------------------------------------------

    async def create(self, uow: UnitOfWork, *, name: str, segment: Segment, text_zh: str,
                     text_en: str, buttons: list[str] | None = None,
                     send_at: datetime | None = None, staff_id: int | None = None) -> int:
        name, text_zh, text_en = name.strip(), text_zh.strip(), text_en.strip()
        if not 1 <= len(name) <= 120:
            raise InvalidBroadcast(reason="name")
        if not text_zh or not text_en:
            raise InvalidBroadcast(reason="text")
        if len(text_zh) > TEXT_LIMIT or len(text_en) > TEXT_LIMIT:
            raise InvalidBroadcast(reason="too_long")
        buttons = list(dict.fromkeys(buttons or []))
        if any(b not in BUTTONS for b in buttons) or len(buttons) > 3:
            raise InvalidBroadcast(reason="button")
        now = uow.clock.now()
        if send_at is not None and send_at <= now:
            raise InvalidBroadcast(reason="send_at")
        result = await uow.conn.execute(broadcasts.insert().values(
            name=name, segment=segment.as_json(), text_zh=text_zh, text_en=text_en,
            buttons=buttons or None, status="scheduled" if send_at else "draft",
            created_by=staff_id, created_at=now, send_at=send_at))
        broadcast_id = int(result.inserted_primary_key[0])
        await analytics.track(uow, "broadcast_created", props={
            "broadcast_id": broadcast_id, "staff_id": staff_id})
        return broadcast_id

    async def cancel(self, uow: UnitOfWork, broadcast_id: int) -> None:
        await self._leave_draft(uow, broadcast_id, status="cancelled",
                                finished_at=uow.clock.now())

    async def start(self, uow: UnitOfWork, broadcast_id: int) -> None:
        """Mark a draft or scheduled broadcast as sending; ``resume`` then writes it out."""
        await self._leave_draft(uow, broadcast_id, status="sending", started_at=uow.clock.now())

    async def _leave_draft(self, uow: UnitOfWork, broadcast_id: int, **values: Any) -> None:
        """A draft or scheduled broadcast moves on; any other is refused (reason "state")."""
        b = broadcasts.c
        done = await uow.conn.execute(update(broadcasts).where(
            b.id == broadcast_id, b.status.in_(("draft", "scheduled"))).values(**values))
        if not done.rowcount:
            raise InvalidBroadcast(reason="state")

    async def due(self, uow: UnitOfWork) -> list[int]:
        """Broadcasts to write out now: scheduled ones whose time came and interrupted ones."""
        b = broadcasts.c
        now = uow.clock.now()
        rows = await uow.conn.execute(select(b.id, b.status).where(
            (b.status == "sending") | ((b.status == "scheduled") & (b.send_at <= now)))
            .order_by(b.id))
        due = []
        for row in rows:
            if row.status == "scheduled":
                await self.start(uow, row.id)
            due.append(int(row.id))
        return due

    async def resume(self, factory: UnitOfWorkFactory, broadcast_id: int) -> int:
        """Write the recipients and notices of a sending broadcast, a chunk per transaction;
        returns how many were written by this call. Safe to repeat after a crash."""
        chunk = self.settings.notify.broadcast_chunk
        async with factory(read_only=True) as work:
            row = (await work.conn.execute(select(broadcasts).where(
                broadcasts.c.id == broadcast_id))).one()
            if row.status != "sending":
                return 0
            audience = await self.audience(work, Segment.from_dict(row.segment))
            r = broadcast_recipients.c
            already = set((await work.conn.execute(select(r.user_id).where(
                r.broadcast_id == broadcast_id))).scalars())
        todo = [u for u in audience if u not in already]
        written = 0
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            async with factory() as work:
                await self._write(work, broadcast_id, part)
                await work.commit()
            written += len(part)
        async with factory() as work:
            await work.conn.execute(update(broadcasts).where(
                broadcasts.c.id == broadcast_id, broadcasts.c.status == "sending").values(
                status="sent", finished_at=work.clock.now(), audience=len(audience)))
            await analytics.track(work, "broadcast_sent", props={
                "broadcast_id": broadcast_id, "audience": len(audience)})
            await work.commit()
        return written

    async def _write(self, uow: UnitOfWork, broadcast_id: int, user_ids: list[int]) -> None:
        now = uow.clock.now()
        await notify.enqueue_many(uow, [
            {"user_id": u, "template": "broadcast", "params": {"broadcast_id": broadcast_id},
             "dedupe_key": f"broadcast:{broadcast_id}:{u}"} for u in user_ids])
        o = outbox.c
        ids = {}
        keys = [f"broadcast:{broadcast_id}:{u}" for u in user_ids]
        for row in await uow.conn.execute(select(o.id, o.user_id).where(o.dedupe_key.in_(keys))):
            ids[row.user_id] = row.id
        await uow.conn.execute(insert_ignore(uow, broadcast_recipients,
                                             conflict=["broadcast_id", "user_id"]),
                               [{"broadcast_id": broadcast_id, "user_id": u,
                                 "outbox_id": ids.get(u), "queued_at": now} for u in user_ids])

    # The segment ------------------------------------------------------------------------------

    async def audience(self, uow: UnitOfWork, segment: Segment) -> list[int]:
        """Registered, active users the segment picks, by id."""
        u = users.c
        query = select(u.id, u.locale).where(u.status == "active", u.registered_at.is_not(None))
        if segment.role == "investor":
            query = query.where(u.is_investor.is_(True))
        elif segment.role == "borrower":
            query = query.where(u.is_borrower.is_(True))
        rows = (await uow.conn.execute(query.order_by(u.id))).all()
        picked = {r.id: r.locale for r in rows}
        if not picked:
            return []
        now = uow.clock.now()
        if segment.locales:
            locales = await self._locales(uow, picked)
            picked = {k: v for k, v in picked.items() if locales.get(k) in segment.locales}
        if segment.channels or segment.inactive_days is not None:
            ci = channel_identities.c
            reach: dict[int, set[str]] = defaultdict(set)
            seen: dict[int, datetime] = {}
            for row in await uow.conn.execute(
                    select(ci.user_id, ci.channel, ci.unreachable, ci.last_seen_at)
                    .where(ci.user_id.is_not(None))):
                if row.user_id not in picked:
                    continue
                if not row.unreachable:
                    reach[row.user_id].add(row.channel)
                if row.user_id not in seen or row.last_seen_at > seen[row.user_id]:
                    seen[row.user_id] = row.last_seen_at
            if segment.channels:
                picked = {k: v for k, v in picked.items()
                          if reach.get(k, set()) & set(segment.channels)}
            if segment.inactive_days is not None:
                cutoff = now - timedelta(days=segment.inactive_days)
                picked = {k: v for k, v in picked.items()
                          if k in seen and seen[k] <= cutoff}
        if segment.risk_levels:
            rp = risk_profiles.c
            latest: dict[int, tuple[datetime, str]] = {}
            for row in await uow.conn.execute(select(rp.user_id, rp.level, rp.assessed_at,
                                                     rp.expires_at)):
                if row.expires_at > now and (row.user_id not in latest
                                             or row.assessed_at > latest[row.user_id][0]):
                    latest[row.user_id] = (row.assessed_at, row.level)
            picked = {k: v for k, v in picked.items()
                      if k in latest and latest[k][1] in segment.risk_levels}
        if segment.min_idle_balance is not None:
            la = ledger_accounts.c
            balances = {row.owner_user_id: Decimal(row.balance) for row in await uow.conn.execute(
                select(la.owner_user_id, la.balance).where(la.kind == "user_available"))}
            picked = {k: v for k, v in picked.items()
                      if balances.get(k, Decimal(0)) >= segment.min_idle_balance}
        if segment.no_first_investment or segment.tiers:
            b = bids.c
            invested: dict[int, Decimal] = defaultdict(Decimal)
            ever: set[int] = set()
            for row in await uow.conn.execute(select(b.investor_id, b.amount, b.status,
                                                     b.principal_repaid)):
                ever.add(row.investor_id)
                if row.status in ("active", "frozen"):
                    invested[row.investor_id] += Decimal(row.amount) - Decimal(
                        row.principal_repaid)
            if segment.no_first_investment:
                picked = {k: v for k, v in picked.items() if k not in ever}
            if segment.tiers:
                picked = {k: v for k, v in picked.items()
                          if sum(1 for t in self.vip if invested.get(k, 0) >= t)
                          in segment.tiers}
        return sorted(picked)

    async def _locales(self, uow: UnitOfWork, picked: dict[int, str | None]) -> dict[int, str]:
        """The language each user chats in: their latest conversation's, else their own."""
        ci, cv = channel_identities.c, conversations.c
        chat: dict[int, tuple[datetime, str]] = {}
        for row in await uow.conn.execute(
                select(ci.user_id, ci.last_seen_at, cv.locale).select_from(
                    channel_identities.join(conversations, and_(
                        cv.channel == ci.channel, cv.chat_id == ci.external_id)))
                .where(ci.user_id.is_not(None))):
            if row.locale and (row.user_id not in chat or row.last_seen_at > chat[row.user_id][0]):
                chat[row.user_id] = (row.last_seen_at, row.locale)
        default = self.settings.locale
        return {k: chat[k][1] if k in chat else (v or default) for k, v in picked.items()}

    # Reading ----------------------------------------------------------------------------------

    async def get(self, uow: UnitOfWork, broadcast_id: int) -> Any:
        return (await uow.conn.execute(select(broadcasts).where(
            broadcasts.c.id == broadcast_id))).one_or_none()

    async def list(self, uow: UnitOfWork, limit: int = 50) -> list[dict[str, Any]]:
        """Broadcasts, newest first, with reach, delivery and conversions."""
        b, r, o = broadcasts.c, broadcast_recipients.c, outbox.c
        rows = (await uow.conn.execute(select(broadcasts).order_by(b.id.desc()).limit(limit))
                ).all()
        if not rows:
            return []
        ids = [row.id for row in rows]
        counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in await uow.conn.execute(
                select(r.broadcast_id, o.status, func.count().label("n"))
                .select_from(broadcast_recipients.outerjoin(outbox, o.id == r.outbox_id))
                .where(r.broadcast_id.in_(ids)).group_by(r.broadcast_id, o.status)):
            counts[row.broadcast_id][row.status or "pending"] += int(row.n)
            counts[row.broadcast_id]["reach"] += int(row.n)
        for row in await uow.conn.execute(
                select(r.broadcast_id, r.conversion, func.count().label("n"))
                .where(r.broadcast_id.in_(ids), r.conversion.is_not(None))
                .group_by(r.broadcast_id, r.conversion)):
            counts[row.broadcast_id][f"converted_{row.conversion}"] += int(row.n)
            counts[row.broadcast_id]["converted"] += int(row.n)
        out = []
        for row in rows:
            c = counts[row.id]
            out.append({**dict(row._mapping), "reach": c["reach"], "sent": c["sent"],
                        "failed": c["failed"], "muted": c["muted"],
                        "waiting": c["pending"] + c["deferred"] + c["queued"],
                        "converted": c["converted"], "converted_top_up": c["converted_top_up"],
                        "converted_investment": c["converted_investment"]})
        return out

    # Conversions ------------------------------------------------------------------------------

    async def attribute_conversions(self, uow: UnitOfWork) -> int:
        """Recipients whose message reached them and who then topped up or invested within the
        window: marked once, each an analytics event ``broadcast_converted``."""
        r, o = broadcast_recipients.c, outbox.c
        now = uow.clock.now()
        window = timedelta(days=self.settings.notify.conversion_days)
        open_rows = (await uow.conn.execute(
            select(r.broadcast_id, r.user_id, o.sent_at)
            .select_from(broadcast_recipients.join(outbox, o.id == r.outbox_id))
            .where(r.converted_at.is_(None), o.status == "sent",
                   o.sent_at >= now - window * 2))).all()
        if not open_rows:
            return 0
        wanted = {row.user_id for row in open_rows}
        earliest = min(row.sent_at for row in open_rows)
        firsts: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
        p, b = payment_orders.c, bids.c
        for row in await uow.conn.execute(select(p.user_id, p.completed_at).where(
                p.kind == "top_up", p.status == "succeeded", p.completed_at >= earliest)):
            if row.user_id in wanted:
                firsts[row.user_id].append((row.completed_at, "top_up"))
        for row in await uow.conn.execute(select(b.investor_id, b.created_at).where(
                b.created_at >= earliest)):
            if row.investor_id in wanted:
                firsts[row.investor_id].append((row.created_at, "investment"))
        changes, events = [], []
        for row in open_rows:
            hits = sorted(h for h in firsts.get(row.user_id, [])
                          if row.sent_at <= h[0] <= row.sent_at + window)
            if not hits:
                continue
            at, kind = hits[0]
            changes.append((row.broadcast_id, row.user_id, at, kind))
            events.append({"name": "broadcast_converted", "user_id": row.user_id, "at": at,
                           "props": {"broadcast_id": row.broadcast_id, "conversion": kind}})
        for broadcast_id, user_id, at, kind in changes:
            await uow.conn.execute(update(broadcast_recipients).where(
                r.broadcast_id == broadcast_id, r.user_id == user_id,
                r.converted_at.is_(None)).values(converted_at=at, conversion=kind))
        await analytics.track_many(uow, events)
        return len(changes)
