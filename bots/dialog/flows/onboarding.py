"""Onboarding after registration: real-name verification, a bank card, the risk questionnaire.

KYC: name -> document type -> number (a passport also asks the issuing country and the birth
date) -> submitted; the provider's answer comes later as a notice.

```mermaid
stateDiagram-v2
    [*] --> status: start
    status --> [*]: already verified or pending (say so)
    status --> name: unverified or rejected
    name --> name: invalid name (re-ask with reason)
    name --> id_type
    id_type --> id_number: resident ID / passport button
    id_number --> id_number: wrong format or check character (name kept)
    id_number --> [*]: resident ID submitted (pending)
    id_number --> country: passport
    country --> country: unknown country
    country --> id_number: number not of that country (country kept)
    country --> birth_date
    birth_date --> birth_date: not a date
    birth_date --> [*]: submitted (pending) / refused (age, document of another account)
```

Card: needs a verified identity; replacing an active card first needs a code sent to the
registered phone. The card number is kept sealed until the bank has been asked, then dropped.

```mermaid
stateDiagram-v2
    [*] --> status: start
    status --> [*]: identity not verified (offer flow:kyc)
    status --> change_code: an active card exists (code to the registered phone)
    status --> number: no card yet
    change_code --> number
    change_code --> bank_code: card and phone already given (after a wrong code)
    number --> number: not digits / Luhn / unknown bank
    number --> phone
    phone --> phone: invalid phone
    phone --> change_code: wrong change code (card and phone kept)
    phone --> bank_code: bank texts its code to the reserved phone
    bank_code --> bank_code: wrong bank code
    bank_code --> [*]: active card shown masked
```

Risk: one question at a time (buttons ``risk:<qid>:<option>``), then the level C1..C5 and the
riskiest product it may buy.

```mermaid
stateDiagram-v2
    [*] --> answer: start (first question)
    answer --> answer: next question / typed text (re-ask with buttons)
    answer --> [*]: all answered, level and max product risk
```

Card confirmation runs in the turn's unit of work (``Cards.confirm``). The bank is asked before
our writes: if the turn's transaction were then rolled back, the sandbox would have spent the code
and the user is told to start again.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

from bots.dialog.flows.base import Ctx
from bots.dialog.flows.registration import CODE
from bots.dialog.types import Button, Reply
from core.domain.errors import (
    CardBindingFailed,
    DomainError,
    IdentityAlreadyUsed,
    InvalidIdNumber,
    InvalidPassport,
    InvalidVerificationCode,
    KycAlreadySubmitted,
    KycRequired,
    OverAge,
    TooManyAttempts,
    UnderAge,
    VerificationCodeExpired,
)
from core.domain.identity import (
    card_label,
    mask_phone,
    normalize_card_number,
    validate_full_name,
    validate_passport,
    validate_resident_id,
)
from core.domain.risk_profile import Question

DATE = re.compile(r"(\d{4})[-/.年]?(\d{1,2})[-/.月]?(\d{1,2})日?")
FINAL = (UnderAge, OverAge, IdentityAlreadyUsed, KycAlreadySubmitted)  # retyping cannot help


def _text(ctx: Ctx) -> str:
    return unicodedata.normalize("NFKC", ctx.inbound.text or "").strip()


def _parse_birth_date(text: str, today: date) -> date | None:
    """A past date typed as 1990-03-07, 1990/3/7, 19900307 or 1990年3月7日; None otherwise."""
    found = DATE.fullmatch("".join(text.split()))
    try:
        day = date(*(int(part) for part in found.groups())) if found else None
    except ValueError:
        return None
    return day if day is not None and day <= today else None


# KYC ------------------------------------------------------------------------------------------


class KycFlow:
    name = "kyc"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        state = await ctx.core.kyc.state(ctx.uow, ctx.user_id)
        if state.status in ("verified", "pending"):
            ctx.finish()
            return [ctx.reply(f"kyc_already_{state.status}", name=state.name_masked,
                              id=state.id_masked)]
        ctx.begin(self.name)
        ctx.goto("name")
        key = "kyc_rejected_retry" if state.status == "rejected" else "kyc_ask_name"
        return [ctx.reply(key)]

    async def step(self, ctx: Ctx) -> list[Reply]:
        return await getattr(self, f"_{ctx.turn.step}")(ctx)

    async def _name(self, ctx: Ctx) -> list[Reply]:
        try:
            name = validate_full_name(_text(ctx))
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.data["name"] = ctx.seal(name, "dialog_name")
        ctx.goto("id_type")
        return [self._ask_type(ctx, "kyc_ask_id_type")]

    def _ask_type(self, ctx: Ctx, key: str) -> Reply:
        return ctx.reply(key, ctx.button("kyc:resident_id", "kyc_resident_id"),
                         ctx.button("kyc:passport", "kyc_passport"))

    async def _id_type(self, ctx: Ctx) -> list[Reply]:
        action = ctx.inbound.action or ""
        if action not in ("kyc:resident_id", "kyc:passport"):
            return [self._ask_type(ctx, "kyc_id_type_buttons")]
        ctx.data["id_type"] = action.removeprefix("kyc:")
        ctx.goto("id_number")
        return [ctx.reply(f"kyc_ask_{ctx.data['id_type']}")]

    async def _id_number(self, ctx: Ctx) -> list[Reply]:
        text = _text(ctx)
        if ctx.data["id_type"] == "resident_id":
            try:
                validate_resident_id(text, ctx.uow.clock.today())
            except InvalidIdNumber as exc:
                return [ctx.error(exc)]
            ctx.data["id_number"] = ctx.seal(text, "dialog_id_number")
            return await self._submit(ctx)
        if not text:
            return [ctx.reply("kyc_ask_passport")]
        ctx.data["id_number"] = ctx.seal(text, "dialog_id_number")
        if "country" in ctx.data:  # the number was wrong for a country already given
            return await self._country(ctx, ctx.data["country"])
        ctx.goto("country")
        return [ctx.reply("kyc_ask_country")]

    async def _country(self, ctx: Ctx, country: str | None = None) -> list[Reply]:
        country = country or _text(ctx)
        number = ctx.unseal(ctx.data["id_number"], "dialog_id_number")
        try:
            passport = validate_passport(country, number)
        except InvalidPassport as exc:
            if exc.params.get("reason") == "passport_number":
                ctx.data["country"] = country
                ctx.goto("id_number")
            else:
                ctx.data.pop("country", None)
                ctx.goto("country")
            return [ctx.error(exc)]
        ctx.data["country"] = passport.country
        ctx.data["id_number"] = ctx.seal(passport.number, "dialog_id_number")
        ctx.goto("birth_date")
        return [ctx.reply("kyc_ask_birth_date")]

    async def _birth_date(self, ctx: Ctx) -> list[Reply]:
        born = _parse_birth_date(_text(ctx), ctx.uow.clock.today())
        if born is None:
            return [ctx.reply("kyc_birth_date_format")]
        ctx.data["birth_date"] = born.isoformat()
        return await self._submit(ctx)

    async def _submit(self, ctx: Ctx) -> list[Reply]:
        data = ctx.data
        born = data.get("birth_date")
        try:
            state = await ctx.core.kyc.submit(
                ctx.uow, ctx.user_id, full_name=ctx.unseal(data["name"], "dialog_name"),
                id_type=data["id_type"],
                id_number=ctx.unseal(data["id_number"], "dialog_id_number"),
                country=data.get("country", "CHN"),
                birth_date=date.fromisoformat(born) if born else None)
        except FINAL as exc:
            ctx.finish()
            return [ctx.error(exc, ctx.button("talk_to_human", "action_talk_to_human"))]
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.finish()
        return [ctx.reply("kyc_submitted", ctx.button("flow:risk", "action_risk_questionnaire"),
                          name=state.name_masked, id=state.id_masked)]


# Bank card ------------------------------------------------------------------------------------


class CardFlow:
    name = "card"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        core, uow = ctx.core, ctx.uow
        state = await core.kyc.state(uow, ctx.user_id)
        if state.status != "verified":
            ctx.finish()
            key = "card_kyc_pending" if state.status == "pending" else "card_needs_kyc"
            return [ctx.reply(key, ctx.button("flow:kyc", "action_kyc"))]
        ctx.begin(self.name)
        active = await core.cards.active_card(uow, ctx.user_id)
        if active is None:
            ctx.goto("number")
            return [ctx.reply("card_ask_number")]
        try:
            masked = await core.registration.request_code(
                uow, await core.registration.phone_of(uow, ctx.user_id), purpose="change_card")
        except DomainError as exc:
            ctx.finish()
            return [ctx.error(exc, self._again(ctx))]
        ctx.goto("change_code")
        return [ctx.reply("card_change_code_sent", phone=masked,
                          card=active.label(core.bins, ctx.turn.locale))]

    async def step(self, ctx: Ctx) -> list[Reply]:
        return await getattr(self, f"_{ctx.turn.step}")(ctx)

    def _again(self, ctx: Ctx) -> Button:
        return ctx.button("flow:card", "action_bind_card")

    async def _change_code(self, ctx: Ctx) -> list[Reply]:
        code = "".join(_text(ctx).split())
        if not CODE.match(code):
            return [ctx.reply("card_code_format")]
        ctx.data["change_code"] = ctx.seal(code, "dialog_code")
        if "phone" in ctx.data:  # card and phone were given; only the code was wrong
            return await self._bind(ctx)
        ctx.goto("number")
        return [ctx.reply("card_ask_number")]

    async def _number(self, ctx: Ctx) -> list[Reply]:
        try:
            digits = normalize_card_number(ctx.inbound.text or "")
            bank = ctx.core.bins.lookup(digits)
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.data["card"] = ctx.seal(digits, "dialog_card")
        ctx.goto("phone")
        return [ctx.reply("card_ask_phone", card=card_label(bank, digits[-4:], ctx.turn.locale))]

    async def _phone(self, ctx: Ctx) -> list[Reply]:
        text = ctx.inbound.contact_phone or _text(ctx)
        try:
            phone = ctx.core.registration.normalize_phone(text)
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.data["phone"] = ctx.seal(phone, "dialog_phone")
        return await self._bind(ctx)

    async def _bind(self, ctx: Ctx) -> list[Reply]:
        data = ctx.data
        phone = ctx.unseal(data["phone"], "dialog_phone")
        change = data.pop("change_code", None)
        try:
            card = await ctx.core.cards.start_binding(
                ctx.uow, ctx.user_id, card_number=ctx.unseal(data["card"], "dialog_card"),
                reserved_phone=phone,
                change_code=ctx.unseal(change, "dialog_code") if change else None)
        except InvalidVerificationCode as exc:
            ctx.goto("change_code")
            return [ctx.error(exc), ctx.reply("card_ask_change_code")]
        except (VerificationCodeExpired, TooManyAttempts, KycRequired) as exc:
            ctx.finish()
            return [ctx.error(exc, self._again(ctx))]
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.data.clear()  # the bank has what it needs; nothing personal stays here
        ctx.data["card_id"] = card.id
        ctx.goto("bank_code")
        return [ctx.reply("card_bank_code_sent", phone=mask_phone(phone),
                          card=card.label(ctx.core.bins, ctx.turn.locale))]

    async def _bank_code(self, ctx: Ctx) -> list[Reply]:
        code = "".join(_text(ctx).split())
        if not CODE.match(code):
            return [ctx.reply("card_code_format")]
        try:
            card = await ctx.core.cards.confirm(ctx.uow, ctx.user_id, ctx.data["card_id"], code)
        except CardBindingFailed as exc:
            if exc.params.get("waiting"):  # a wrong code: type it again
                return [ctx.error(exc)]
            ctx.finish()  # the bank was unavailable, or another binding replaced this one
            return [ctx.error(exc, self._again(ctx))]
        ctx.finish()
        return [ctx.reply("card_bound", card=card.label(ctx.core.bins, ctx.turn.locale))]


# Risk questionnaire ---------------------------------------------------------------------------


class RiskFlow:
    name = "risk"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        ctx.begin(self.name)
        ctx.data["answers"] = {}
        ctx.goto("answer")
        return [ctx.reply("risk_intro"), self._ask(ctx, self._next(ctx))]

    async def step(self, ctx: Ctx) -> list[Reply]:
        return await getattr(self, f"_{ctx.turn.step}")(ctx)

    def _next(self, ctx: Ctx) -> Question | None:
        answers = ctx.data["answers"]
        questions = ctx.core.risk.questionnaire.questions
        return next((q for q in questions if q.id not in answers), None)

    def _ask(self, ctx: Ctx, question: Question | None, key: str = "risk_question") -> Reply:
        assert question is not None
        questions = ctx.core.risk.questionnaire.questions
        locale = ctx.turn.locale
        reply = ctx.reply(key, number=questions.index(question) + 1, total=len(questions),
                          question=question.text.get(locale) or question.text["zh-CN"])
        buttons = tuple(Button(f"risk:{question.id}:{o.id}", o.text.get(locale) or o.text["zh-CN"])
                        for o in question.options)
        return Reply(reply.text, buttons)

    async def _answer(self, ctx: Ctx) -> list[Reply]:
        questionnaire = ctx.core.risk.questionnaire
        kind, _, choice = (ctx.inbound.action or "").partition(":")
        qid, _, oid = choice.partition(":")
        known = {q.id: {o.id for o in q.options} for q in questionnaire.questions}
        if kind != "risk" or oid not in known.get(qid, ()):
            return [self._ask(ctx, self._next(ctx), "risk_use_buttons")]
        ctx.data["answers"][qid] = oid  # an earlier question's button changes that answer
        following = self._next(ctx)
        if following is not None:
            return [self._ask(ctx, following)]
        try:
            profile = await ctx.core.risk.assess(ctx.uow, ctx.user_id, ctx.data["answers"])
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.finish()
        return [ctx.reply("risk_result", level=profile.level,
                          name=ctx.t(f"risk_level_{profile.level}"),
                          max_risk=questionnaire.max_product_risk(profile.level),
                          expires=profile.expires_at.date().isoformat())]
