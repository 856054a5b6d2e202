"""Onboarding in chat, in-process: identity verification, a bank card, the risk questionnaire."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select

from bots.dialog.engine import FLOWS, DialogEngine
from bots.dialog.flows.onboarding import CardFlow, KycFlow, RiskFlow
from bots.dialog.i18n import Catalog
from bots.dialog.types import Inbound
from core.adapters.tables import bank_cards, conversations, risk_profiles
from core.domain.errors import (
    CardBindingFailed,
    InvalidCardNumber,
    InvalidIdNumber,
    InvalidPassport,
    InvalidVerificationCode,
)
from core.services.risk import add_months
from knowledge_base import KnowledgeBase
from tests.integration.accounts_helpers import card, resident_id

_ids = itertools.count(1)
_phones = itertools.count(20_000_000)
BANK = {"zh-CN": "招商银行", "en": "China Merchants Bank"}


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


@pytest.fixture
def engine(core, kb) -> DialogEngine:
    for flow in (KycFlow(), CardFlow(), RiskFlow()):
        FLOWS.setdefault(flow.name, flow)
    return DialogEngine(core, kb, Catalog.load())


class Chat:
    """One user's chat with the engine, in one language."""

    def __init__(self, engine: DialogEngine, name: str, locale: str) -> None:
        self.engine, self.name, self.locale = engine, name, locale

    async def say(self, text: str | None = None, *, action: str | None = None):
        return await self.engine.handle(Inbound(
            "telegram", self.name, f"m{next(_ids)}", text=text, action=action,
            locale_hint=self.locale))

    async def tap(self, action: str):
        return await self.say(action=action)

    def text(self, key: str, **params: object) -> str:
        return self.engine.catalog.text(self.locale, key, **params)

    def error(self, exc: Exception) -> str:
        return self.engine.catalog.error(self.locale, exc)

    async def data(self) -> dict:
        async with self.engine.core.uow(read_only=True) as uow:
            row = (await uow.conn.execute(select(conversations.c.data).where(
                conversations.c.chat_id == self.name))).one()
        return row.data or {}


async def registered(engine: DialogEngine, locale: str) -> Chat:
    chat = Chat(engine, f"onb-{next(_ids)}", locale)
    phone = f"139{next(_phones):08d}"
    await chat.tap("menu:invest")
    await chat.say(phone)
    await chat.say(engine.core.sms.last_code("+86" + phone))
    (done,) = await chat.tap("reg:agree")
    assert done.text.startswith(chat.text("reg_done", referral="")[:8])
    return chat


async def verified(engine: DialogEngine, locale: str = "zh-CN") -> Chat:
    chat = await registered(engine, locale)
    await chat.tap("flow:kyc")
    await chat.say("张三")
    await chat.tap("kyc:resident_id")
    await chat.say(resident_id())
    await engine.core.kyc.process_pending(engine.core.uow)
    return chat


async def kyc_status(core, chat: Chat) -> str:
    async with core.uow(read_only=True) as uow:
        user_id = await core.registration.user_for(uow, "telegram", chat.name)
        return (await core.kyc.state(uow, user_id)).status


async def bind(core, chat: Chat, number: str) -> str:
    """Type the card number and a fresh reserved phone; return the bank's code."""
    reserved = f"137{next(_phones):08d}"
    await chat.say(number)
    await chat.say(reserved)
    return core.sms.last_code("+86" + reserved)


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_registered_user_verifies_binds_a_card_and_gets_a_risk_level(core, engine,
                                                                            locale):
    chat = await registered(engine, locale)
    (ask,) = await chat.tap("flow:kyc")
    assert ask.text == chat.text("kyc_ask_name")
    (kind,) = await chat.say("张三")
    assert [b.action for b in kind.buttons] == ["kyc:resident_id", "kyc:passport"]
    (typed,) = await chat.say("I have an ID card")
    assert typed.text == chat.text("kyc_id_type_buttons") and typed.buttons == kind.buttons
    (number,) = await chat.tap("kyc:resident_id")
    assert number.text == chat.text("kyc_ask_resident_id")
    good = resident_id()
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    (bad,) = await chat.say(wrong)
    assert bad.text == chat.error(InvalidIdNumber(reason="id_checksum"))
    (submitted,) = await chat.say(good)  # the name typed before is still there
    assert submitted.text == chat.text("kyc_submitted", name="张*",
                                       id=f"{good[:3]}***********{good[-4:]}")
    assert await kyc_status(core, chat) == "pending"
    await core.kyc.process_pending(core.uow)
    assert await kyc_status(core, chat) == "verified"

    (ask_card,) = await chat.tap("flow:card")
    assert ask_card.text == chat.text("card_ask_number")
    (luhn,) = await chat.say("6225 8800 0000 1001")
    assert luhn.text == chat.error(InvalidCardNumber(reason="card_checksum"))
    assert "6225880000001001" not in repr(await chat.data())
    number = card("622588")
    bank_code = await bind(core, chat, number)
    assert "6225" not in repr(await chat.data()) and number[-4:] not in repr(await chat.data())
    (refused,) = await chat.say(f"{(int(bank_code) + 1) % 1_000_000:06d}")
    assert refused.text == chat.error(CardBindingFailed())
    (bound,) = await chat.say(bank_code)
    label = f"{BANK[locale]} ···· {number[-4:]}"
    assert bound.text == chat.text("card_bound", card=label)
    async with core.uow(read_only=True) as uow:
        status = (await uow.conn.execute(select(bank_cards.c.status))).scalar_one()
    assert status == "active"

    questions = core.risk.questionnaire.questions
    intro, first = await chat.tap("flow:risk")
    assert intro.text == chat.text("risk_intro")
    assert first.text == chat.text("risk_question", number=1, total=len(questions),
                                   question=questions[0].text[locale])
    assert [b.label for b in first.buttons] == [o.text[locale] for o in questions[0].options]
    answers = {q.id: q.options[1].id for q in questions}
    for question in questions:
        (reply,) = await chat.tap(f"risk:{question.id}:{answers[question.id]}")
    level = core.risk.questionnaire.score(answers).level
    async with core.uow(read_only=True) as uow:
        stored = (await uow.conn.execute(select(risk_profiles.c.level))).scalar_one()
    assert stored == level
    expires = add_months(core.clock.now(), core.risk.questionnaire.validity_months)
    assert reply.text == chat.text("risk_result", level=level,
                                   name=chat.text(f"risk_level_{level}"),
                                   max_risk=core.risk.questionnaire.max_product_risk(level),
                                   expires=expires.date().isoformat())


async def test_a_passport_is_verified_with_its_country_and_birth_date(core, engine):
    chat = await registered(engine, "en")
    await chat.tap("flow:kyc")
    await chat.say("John Smith")
    (ask,) = await chat.tap("kyc:passport")
    assert ask.text == chat.text("kyc_ask_passport")
    (country,) = await chat.say("X1234567")
    assert country.text == chat.text("kyc_ask_country")
    (unknown,) = await chat.say("ZZZ")
    assert unknown.text == chat.error(InvalidPassport(reason="passport_country"))
    (born,) = await chat.say("USA")
    assert born.text == chat.text("kyc_ask_birth_date")
    (not_a_date,) = await chat.say("March the seventh")
    assert not_a_date.text == chat.text("kyc_birth_date_format")
    (submitted,) = await chat.say("1990-03-07")
    assert submitted.text.startswith("Your identity verification (J")
    await core.kyc.process_pending(core.uow)
    assert await kyc_status(core, chat) == "verified"
    (again,) = await chat.tap("flow:kyc")
    assert again.text.startswith("Your identity is already verified")


async def test_a_chinese_passport_number_of_the_wrong_form_asks_the_number_again(core, engine):
    chat = await registered(engine, "zh-CN")
    await chat.tap("flow:kyc")
    await chat.say("张三")
    await chat.tap("kyc:passport")
    await chat.say("X1234567")
    (wrong,) = await chat.say("CHN")
    assert wrong.text == chat.error(InvalidPassport(reason="passport_number"))
    (born,) = await chat.say("E12345678")  # the country typed before is kept
    assert born.text == chat.text("kyc_ask_birth_date")
    (submitted,) = await chat.say("1990年3月7日")
    assert "审核" in submitted.text
    (pending,) = await chat.tap("flow:kyc")
    assert pending.text.startswith("您的实名认证")


async def test_a_card_needs_verified_identity_first(core, engine):
    chat = await registered(engine, "zh-CN")
    (refused,) = await chat.tap("flow:card")
    assert refused.text == chat.text("card_needs_kyc")
    assert [b.action for b in refused.buttons] == ["flow:kyc"]
    async with core.uow(read_only=True) as uow:
        state = (await uow.conn.execute(select(conversations.c.flow).where(
            conversations.c.chat_id == chat.name))).scalar_one()
    assert state is None


async def test_changing_the_card_needs_the_code_sent_to_the_registered_phone(core, engine):
    chat = await verified(engine, "en")
    await chat.tap("flow:card")
    old = card("622588")
    await chat.say(await bind(core, chat, old))
    core.clock.advance(timedelta(minutes=1))
    (sent,) = await chat.tap("flow:card")
    assert f"{BANK['en']} ···· {old[-4:]}" in sent.text and "139****" in sent.text
    async with core.uow(read_only=True) as uow:
        user_id = await core.registration.user_for(uow, "telegram", chat.name)
        own = await core.registration.phone_of(uow, user_id)
    code = core.sms.last_code(own)
    await chat.say(f"{(int(code) + 1) % 1_000_000:06d}")
    new = card("622202", 19)
    reserved = f"137{next(_phones):08d}"
    await chat.say(new)
    wrong, ask = await chat.say(reserved)
    assert wrong.text == chat.error(InvalidVerificationCode(attempts_left=4))
    assert ask.text == chat.text("card_ask_change_code")
    (bank,) = await chat.say(code)  # card and reserved phone were kept (sealed)
    label = f"Industrial and Commercial Bank of China ···· {new[-4:]}"
    assert bank.text == chat.text("card_bank_code_sent", phone="137****" + reserved[-4:],
                                  card=label)
    (bound,) = await chat.say(core.sms.last_code("+86" + reserved))
    assert bound.text == chat.text("card_bound", card=label)
    async with core.uow(read_only=True) as uow:
        statuses = (await uow.conn.execute(select(bank_cards.c.status).order_by(
            bank_cards.c.id))).scalars().all()
    assert statuses == ["replaced", "active"]


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_cancel_in_the_middle_returns_to_the_menu(core, engine, locale):
    chat = await verified(engine, locale)
    await chat.tap("flow:card")
    number = card("622588")
    await chat.say(number)
    kept = await chat.data()
    assert kept["card"] and number not in repr(kept)  # sealed while the flow runs
    (cancelled,) = await chat.say("/cancel")
    assert cancelled.text == chat.text("cancelled")
    assert cancelled.buttons[0].action == "menu:invest"
    assert await chat.data() == {}


async def test_typing_instead_of_tapping_repeats_the_question(core, engine):
    chat = await registered(engine, "en")
    await chat.tap("flow:risk")
    first = core.risk.questionnaire.questions[0]
    (again,) = await chat.say("b")
    assert again.text.startswith("Please tap a button") and first.text["en"] in again.text
    (stale,) = await chat.tap(f"risk:{first.id}:nope")
    assert [b.action for b in stale.buttons] == [b.action for b in again.buttons]
    (second,) = await chat.tap(f"risk:{first.id}:{first.options[0].id}")
    assert second.text.startswith("(2/")
