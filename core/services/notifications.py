"""What users chose about proactive messages, and the rules that decide when a notice may go.

Each outbox template has a rule (``config/notices.toml``): its group, the preference that can
mute it (``marketing`` or ``updates``; none: required by the loan contract or by law) and whether
it is urgent. ``decide`` applies a rule to a user's preferences at a moment:

- muted: a notice whose mute preference the user turned on is not sent (status ``muted``);
- quiet hours (the user's own, else ``servicing.quiet_hours_start``-``quiet_hours_end`` in the
  business time zone): a notice that is not urgent waits for the window's end (``deferred``);
  collections notices are never urgent and always keep the platform's window too;
- anything else goes now.

``ops_summary`` is the operations view: notices by template, channel and status.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from config.settings import Settings
from core import analytics
from core.adapters.sql import insert_ignore
from core.adapters.tables import channel_identities, notification_preferences, outbox
from core.adapters.uow import UnitOfWork
from core.domain.errors import InvalidQuietHours, UnknownChannel
from core.domain.overdue import next_allowed

RULES_FILE = Path(__file__).resolve().parents[2] / "config" / "notices.toml"
GROUPS = ("account", "security", "collections", "investment", "marketing")
MUTES = ("marketing", "updates")
STATUSES = ("pending", "deferred", "queued", "sent", "failed", "muted")
_WINDOW = re.compile(
    r"^\s*(\d{1,2})[:：](\d{2})\s*(?:-|~|～|—|－|到|至|to)\s*(\d{1,2})[:：](\d{2})\s*$",
    re.IGNORECASE)
OFF_WORDS = ("off", "none", "关闭", "关", "无", "不需要")


@dataclass(frozen=True, slots=True)
class NoticeRule:
    template: str
    group: str
    mute: str | None = None  # None: required, cannot be muted
    urgent: bool = False

    @property
    def required(self) -> bool:
        return self.mute is None


def load_rules(path: Path | None = None) -> dict[str, NoticeRule]:
    """The rules of every template; a malformed entry stops start-up naming it."""
    with open(path or RULES_FILE, "rb") as f:
        data = tomllib.load(f)
    rules = {}
    for template, entry in data.get("templates", {}).items():
        unknown = set(entry) - {"group", "mute", "urgent"}
        if unknown or entry.get("group") not in GROUPS or entry.get("mute") not in (None, *MUTES):
            raise ValueError(f"notice rule {template!r}: group must be one of {GROUPS}, mute "
                             f"one of {MUTES} or absent; unknown keys {sorted(unknown)}")
        if entry["group"] == "collections" and entry.get("urgent"):
            raise ValueError(f"notice rule {template!r}: collections notices are never urgent")
        rules[template] = NoticeRule(template, entry["group"], entry.get("mute"),
                                     bool(entry.get("urgent", False)))
    return rules


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """``"22:00-07:00"`` -> a window; ``"off"`` -> None. InvalidQuietHours otherwise.
        A window is one to twelve hours long, so a typo cannot silence a whole day."""
        if text.strip().lower() in OFF_WORDS:
            return None
        match = _WINDOW.match(text.translate(_FULL_WIDTH))
        if not match:
            raise InvalidQuietHours(text=text)
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60):
            raise InvalidQuietHours(text=text)
        length = ((h2 * 60 + m2) - (h1 * 60 + m1)) % (24 * 60)
        if not 60 <= length <= 12 * 60:
            raise InvalidQuietHours(text=text)
        return cls(time(h1, m1), time(h2, m2))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


_FULL_WIDTH = str.maketrans("０１２３４５６７８９：－～", "0123456789:-~")


@dataclass(frozen=True, slots=True)
class Preferences:
    marketing_muted: bool = False
    updates_muted: bool = False
    quiet: QuietHours | None = None  # None with quiet_off False: the default window
    quiet_off: bool = False
    preferred_channel: str | None = None

    @property
    def custom_quiet(self) -> bool:
        """The user chose their quiet hours (a window of their own, or none)."""
        return self.quiet is not None or self.quiet_off

    def mutes(self, rule: NoticeRule) -> bool:
        return (rule.mute == "marketing" and self.marketing_muted) or (
            rule.mute == "updates" and self.updates_muted)


Decision = tuple[Literal["send", "mute", "defer"], datetime | None]


class Notifications:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tz: ZoneInfo = settings.tz
        self.rules = load_rules(settings.notify.templates_file)
        servicing = settings.servicing
        self.default_quiet = QuietHours.parse(
            f"{servicing.quiet_hours_start}-{servicing.quiet_hours_end}")

    def rule(self, template: str) -> NoticeRule | None:
        return self.rules.get(template)

    # Deciding ---------------------------------------------------------------------------------

    def quiet_hours(self, prefs: Preferences) -> QuietHours | None:
        if prefs.quiet_off:
            return None
        return prefs.quiet or self.default_quiet

    def decide(self, rule: NoticeRule, prefs: Preferences, now: datetime) -> Decision:
        """Send now, drop as muted, or defer until the given moment (end of quiet hours).
        Collections notices keep the platform's window whatever the user chose (the user's own
        window applies on top), so no collections message goes out at night."""
        if prefs.mutes(rule) and not rule.required:
            return "mute", None
        if rule.urgent:
            return "send", None
        windows = [w for w in (self.quiet_hours(prefs),) if w is not None]
        if rule.group == "collections" and self.default_quiet is not None:
            windows.append(self.default_quiet)
        until = now
        for _ in range(3):  # two windows can chain (one ends inside the other)
            moved = until
            for window in windows:
                moved = max(moved, next_allowed(moved, self.tz, window.start, window.end))
            if moved == until:
                break
            until = moved
        return ("defer", until) if until > now else ("send", None)

    # Preferences ------------------------------------------------------------------------------

    async def preferences(self, uow: UnitOfWork, user_ids: set[int]) -> dict[int, Preferences]:
        """Each user's preferences (defaults for users who never changed them)."""
        if not user_ids:
            return {}
        p = notification_preferences.c
        found: dict[int, Preferences] = {}
        ids = sorted(user_ids)
        for start in range(0, len(ids), 5000):
            for row in await uow.conn.execute(select(notification_preferences).where(
                    p.user_id.in_(ids[start:start + 5000]))):
                found[row.user_id] = _from_row(row)
        return {user: found.get(user, Preferences()) for user in user_ids}

    async def preferences_of(self, uow: UnitOfWork, user_id: int) -> Preferences:
        return (await self.preferences(uow, {user_id}))[user_id]

    async def set_muted(self, uow: UnitOfWork, user_id: int, what: str, muted: bool, *,
                        channel: str | None = None) -> None:
        if what not in MUTES:
            raise ValueError(f"mute one of {MUTES}")
        await self._save(uow, user_id, {f"{what}_muted": muted})
        await analytics.track(uow, "notifications_muted" if muted else "notifications_unmuted",
                              user_id=user_id, channel=channel, props={"what": what})

    async def set_quiet_hours(self, uow: UnitOfWork, user_id: int, text: str | None) -> None:
        """``None``: back to the default window; ``"off"``; or ``"22:00-07:00"``."""
        if text is None:
            await self._save(uow, user_id, {"quiet_hours": None})
            return
        window = QuietHours.parse(text)
        await self._save(uow, user_id, {"quiet_hours": str(window) if window else "off"})

    async def set_preferred_channel(self, uow: UnitOfWork, user_id: int,
                                    channel: str | None) -> None:
        """Notices go to the chat of ``channel`` (``None``: the chat used last)."""
        if channel is not None:
            c = channel_identities.c
            known = (await uow.conn.execute(select(func.count()).select_from(channel_identities)
                     .where(c.user_id == user_id, c.channel == channel))).scalar_one()
            if not known:
                raise UnknownChannel(channel=channel)
        await self._save(uow, user_id, {"preferred_channel": channel})

    async def _save(self, uow: UnitOfWork, user_id: int, values: dict[str, Any]) -> None:
        p = notification_preferences.c
        now = uow.clock.now()
        await uow.conn.execute(insert_ignore(uow, notification_preferences, {
            "user_id": user_id, "marketing_muted": False, "updates_muted": False,
            "updated_at": now}, conflict=["user_id"]))
        await uow.conn.execute(notification_preferences.update().where(p.user_id == user_id)
                               .values(**values, updated_at=now))

    # Operations view --------------------------------------------------------------------------

    async def ops_summary(self, uow: UnitOfWork, since: datetime | None = None
                          ) -> list[dict[str, Any]]:
        """Notices by template, channel and status (created since ``since``, if given), with
        each template's group; deferred ones with the earliest moment they may go."""
        o = outbox.c
        query = (select(o.template, o.channel, o.status, func.count().label("n"),
                        func.min(o.not_before).label("next_at"))
                 .group_by(o.template, o.channel, o.status)
                 .order_by(o.template, o.channel, o.status))
        if since is not None:
            query = query.where(o.created_at >= since)
        rows = []
        for row in await uow.conn.execute(query):
            rule = self.rules.get(row.template)
            rows.append({"template": row.template, "group": rule.group if rule else "unknown",
                         "channel": row.channel or "-", "status": row.status,
                         "count": int(row.n),
                         "next_at": row.next_at if row.status == "deferred" else None})
        return rows

    async def ops_totals(self, uow: UnitOfWork, since: datetime | None = None
                         ) -> dict[str, int]:
        """Notices by status (every status present, zero if none)."""
        return totals_of(await self.ops_summary(uow, since))

    async def recent_failures(self, uow: UnitOfWork, limit: int = 20) -> list[dict[str, Any]]:
        o = outbox.c
        rows = (await uow.conn.execute(
            select(o.id, o.user_id, o.template, o.channel, o.last_error, o.created_at)
            .where(o.status == "failed").order_by(o.id.desc()).limit(limit))).all()
        return [dict(r._mapping) for r in rows]


def totals_of(summary: list[dict[str, Any]]) -> dict[str, int]:
    """``ops_summary``'s rows added up by status (every status present, zero if none)."""
    totals = dict.fromkeys(STATUSES, 0)
    for row in summary:
        totals[row["status"]] = totals.get(row["status"], 0) + row["count"]
    return totals


def _from_row(row: Any) -> Preferences:
    quiet, off = None, False
    if row.quiet_hours == "off":
        off = True
    elif row.quiet_hours:
        quiet = QuietHours.parse(row.quiet_hours)
    return Preferences(bool(row.marketing_muted), bool(row.updates_muted), quiet, off,
                       row.preferred_channel)
