"""Notification settings in chat: offers on/off, investment updates on/off, quiet hours, and the
chat notices go to.

```mermaid
stateDiagram-v2
    [*] --> menu: /notifications, flow:notifications (registered users)
    menu --> menu: notify:marketing_off|on, notify:updates_off|on, notify:here, notify:last
    menu --> quiet: notify:quiet
    quiet --> quiet: not a window (the reason, asked again)
    quiet --> menu: "22:00-07:00" / notify:quiet_default / notify:quiet_off
    menu --> [*]: any other message (the chat goes on as usual)
```

"TD", "退订", "unsubscribe" or "STOP" typed anywhere, and the "Stop offers" button under every
broadcast (``notify:mute_marketing``), turn offers off at once. Notices the loan contract or the
law requires (repayment reminders, money returned, account and security) cannot be turned off;
the summary says so.
"""

from __future__ import annotations

from typing import Any

from bots.dialog.flows.base import Ctx
from bots.dialog.types import Reply
from core.domain.errors import InvalidQuietHours, UnknownChannel

UNSUBSCRIBE_WORDS = ("td", "退订", "unsubscribe", "stop")
ACTIONS = ("notify:marketing_off", "notify:marketing_on", "notify:updates_off",
           "notify:updates_on", "notify:here", "notify:last", "notify:quiet",
           "notify:quiet_default", "notify:quiet_off", "notify:mute_marketing")


class NotificationsFlow:
    name = "notifications"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        ctx.begin(self.name)
        ctx.goto("menu")
        return [await self._summary(ctx)]

    async def step(self, ctx: Ctx) -> list[Reply]:
        action = ctx.inbound.action
        if action in ACTIONS:
            return await self.act(ctx, action)
        if ctx.turn.step == "quiet" and ctx.inbound.text:
            try:
                await ctx.core.notifications.set_quiet_hours(ctx.uow, ctx.user_id,
                                                             ctx.inbound.text)
            except InvalidQuietHours as exc:
                return [ctx.error(exc, *self._quiet_buttons(ctx))]
            ctx.goto("menu")
            return [await self._summary(ctx, saved=True)]
        ctx.finish()  # anything else: the chat goes on as usual (a question, say)
        text = (ctx.inbound.text or "").strip()
        if not text:
            return [ctx.engine.menu(ctx.turn.locale)]
        return await ctx.engine.answer(ctx.uow, ctx.turn, text)

    async def act(self, ctx: Ctx, action: str) -> list[Reply]:
        """A settings button (or the unsubscribe words), from this flow or from a notice."""
        prefs = ctx.core.notifications
        channel = ctx.inbound.channel
        if action == "notify:mute_marketing":
            await prefs.set_muted(ctx.uow, ctx.user_id, "marketing", True, channel=channel)
            return [ctx.reply("notify_marketing_muted")]
        if ctx.turn.flow != self.name:
            ctx.begin(self.name)
        ctx.goto("menu")
        if action in ("notify:marketing_off", "notify:marketing_on"):
            await prefs.set_muted(ctx.uow, ctx.user_id, "marketing",
                                  action.endswith("_off"), channel=channel)
        elif action in ("notify:updates_off", "notify:updates_on"):
            await prefs.set_muted(ctx.uow, ctx.user_id, "updates", action.endswith("_off"),
                                  channel=channel)
        elif action == "notify:quiet":
            ctx.goto("quiet")
            return [Reply(ctx.t("notify_quiet_ask"), tuple(self._quiet_buttons(ctx)))]
        elif action == "notify:quiet_default":
            await prefs.set_quiet_hours(ctx.uow, ctx.user_id, None)
        elif action == "notify:quiet_off":
            await prefs.set_quiet_hours(ctx.uow, ctx.user_id, "off")
        elif action in ("notify:here", "notify:last"):
            try:
                await prefs.set_preferred_channel(
                    ctx.uow, ctx.user_id, channel if action == "notify:here" else None)
            except UnknownChannel as exc:
                return [ctx.error(exc)]
        return [await self._summary(ctx, saved=True)]

    def _quiet_buttons(self, ctx: Ctx) -> list[Any]:
        window = str(ctx.core.notifications.default_quiet)
        return [ctx.button("notify:quiet_default", "notify_button_quiet_default", window=window),
                ctx.button("notify:quiet_off", "notify_button_quiet_off")]

    async def _summary(self, ctx: Ctx, *, saved: bool = False) -> Reply:
        service = ctx.core.notifications
        prefs = await service.preferences_of(ctx.uow, ctx.user_id)
        window = service.quiet_hours(prefs)
        if window is None:
            quiet = ctx.t("notify_quiet_none")
        elif prefs.custom_quiet:
            quiet = str(window)
        else:
            quiet = ctx.t("notify_quiet_default", window=str(window))
        where = (ctx.t(f"notify_channel_{prefs.preferred_channel}")
                 if prefs.preferred_channel in ("telegram", "web")
                 else ctx.t("notify_where_last"))
        text = ctx.t("notify_summary",
                     marketing=ctx.t("notify_off" if prefs.marketing_muted else "notify_on"),
                     updates=ctx.t("notify_off" if prefs.updates_muted else "notify_on"),
                     quiet=quiet, where=where)
        if saved:
            text = f"{ctx.t('notify_saved')}\n\n{text}"
        here = prefs.preferred_channel == ctx.inbound.channel
        return Reply(text, (
            ctx.button("notify:marketing_on" if prefs.marketing_muted
                       else "notify:marketing_off",
                       "notify_button_marketing_on" if prefs.marketing_muted
                       else "notify_button_marketing_off"),
            ctx.button("notify:updates_on" if prefs.updates_muted else "notify:updates_off",
                       "notify_button_updates_on" if prefs.updates_muted
                       else "notify_button_updates_off"),
            ctx.button("notify:quiet", "notify_button_quiet"),
            ctx.button("notify:last" if here else "notify:here",
                       "notify_button_last" if here else "notify_button_here")))
