"""Registration: phone (typed or shared contact) -> SMS code -> agreements -> account.

```mermaid
stateDiagram-v2
    [*] --> phone: start(role)
    phone --> phone: invalid / too soon (re-ask with reason)
    phone --> code: code sent
    code --> code: not 6 digits
    code --> consent
    consent --> [*]: decline
    consent --> code: wrong or expired code (phone kept)
    consent --> [*]: registered (or linked to the existing account)
```
"""

from __future__ import annotations

import re
from typing import Any

from bots.dialog.flows.base import Ctx
from bots.dialog.types import Reply
from core.domain.errors import (
    DomainError,
    InvalidVerificationCode,
    TooManyAttempts,
    VerificationCodeExpired,
)

CODE = re.compile(r"^\d{4,8}$")
# A button asking the channel to share the user's own phone (Telegram: a contact request key).
SHARE_CONTACT = "contact:request"


def _ask_phone(ctx: Ctx) -> Reply:
    return ctx.reply("reg_ask_phone", ctx.button(SHARE_CONTACT, "reg_share_contact"))


class RegistrationFlow:
    name = "register"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        ctx.begin(self.name)
        ctx.data["roles"] = [options.get("role", "investor")]
        ctx.goto("phone")
        return [_ask_phone(ctx)]

    async def step(self, ctx: Ctx) -> list[Reply]:
        return await getattr(self, f"_{ctx.turn.step}")(ctx)

    async def _phone(self, ctx: Ctx) -> list[Reply]:
        phone = ctx.inbound.contact_phone or (ctx.inbound.text or "").strip()
        try:
            masked = await ctx.core.registration.request_code(ctx.uow, phone)
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.data["phone"] = ctx.seal(phone, "dialog_phone")
        ctx.goto("code")
        return [ctx.reply("reg_code_sent", phone=masked)]

    async def _code(self, ctx: Ctx) -> list[Reply]:
        code = "".join((ctx.inbound.text or "").split())
        if not CODE.match(code):
            return [ctx.reply("reg_code_format")]
        ctx.data["code"] = code
        ctx.goto("consent")
        settings = ctx.core.settings.registration
        return [ctx.reply("reg_consent", ctx.button("reg:agree", "reg_agree"),
                          ctx.button("reg:decline", "reg_decline"),
                          agreement=settings.user_agreement_version,
                          disclosure=settings.risk_disclosure_version)]

    async def _consent(self, ctx: Ctx) -> list[Reply]:
        if ctx.inbound.action == "reg:decline":
            ctx.finish()
            return [ctx.reply("reg_declined")]
        if ctx.inbound.action != "reg:agree":
            return [ctx.reply("reg_consent_buttons", ctx.button("reg:agree", "reg_agree"),
                              ctx.button("reg:decline", "reg_decline"))]
        settings = ctx.core.settings.registration
        try:
            done = await ctx.core.registration.register(
                ctx.uow, ctx.identity, phone_text=ctx.unseal(ctx.data["phone"], "dialog_phone"),
                code=ctx.data.pop("code"), roles=set(ctx.data["roles"]),
                accepted={"user_agreement": settings.user_agreement_version,
                          "risk_disclosure": settings.risk_disclosure_version},
                referral_code=ctx.identity.referrer, locale=ctx.turn.locale)
        except (InvalidVerificationCode, VerificationCodeExpired, TooManyAttempts) as exc:
            restart = isinstance(exc, VerificationCodeExpired | TooManyAttempts)
            ctx.goto("phone" if restart else "code")
            return [ctx.error(exc), _ask_phone(ctx) if restart else ctx.reply("reg_ask_code")]
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.finish()
        key = "reg_done" if done.created else "reg_linked"
        return [ctx.reply(key, ctx.button("menu:kyc", "action_kyc"),
                          referral=done.referral_code)]
