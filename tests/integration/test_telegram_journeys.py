"""Whole journeys through Telegram: python-telegram-bot and the product against the local Bot API
server, each step checked in what the user reads and in what the database holds. They mirror
the in-process dialog tests (test_dialog_*.py), pressing only buttons the bot really showed."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bots.dialog.agents import AgentDesk
from bots.dialog.dispatcher import Dispatcher
from bots.dialog.engine import CONFIDENT
from bots.dialog.notices import render_notice
from core.adapters.tables import (
    bank_cards,
    bids,
    channel_identities,
    chat_messages,
    conversations,
    documents,
    installments,
    loans,
    outbox,
    payment_orders,
    risk_profiles,
    users,
)
from core.domain.money import Money
from core.domain.schedule import build_schedule, investor_schedules
from core.services.lending.investing import BidRequest
from core.services.risk import add_months
from tests.integration.accounts_helpers import card, onboard, register, resident_id
from tests.integration.lending_helpers import cny, investor, listed_loan
from tests.integration.servicing_helpers import run_day, schedule, set_day
from tests.integration.telegram_helpers import Telegram, TgUser, actions, telegram, texts

BANK = {"zh-CN": "招商银行", "en": "China Merchants Bank"}
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


async def relay(tg: Telegram) -> None:
    """The notice relay runs once and what it queued reaches the chats."""
    async with tg.core.uow() as uow:
        await Dispatcher(tg.engine).run_once(uow)
        await uow.commit()
    tg.adapter.sender.poke()
    await tg.idle()


async def rendered_notices(tg: Telegram, user_id: int, locale: str) -> list[str]:
    """The notices handed to the user's chat, oldest first, as the catalogs render them."""
    async with tg.core.uow(read_only=True) as uow:
        rows = (await uow.conn.execute(select(outbox.c.template, outbox.c.params).where(
            outbox.c.user_id == user_id, outbox.c.status == "sent", outbox.c.channel == "telegram")
            .order_by(outbox.c.id))).all()
    return [render_notice(tg.engine.catalog, r.template, r.params or {}, locale).text
            for r in rows]


async def user_of(tg: Telegram, me: TgUser) -> int | None:
    async with tg.core.uow(read_only=True) as uow:
        return await tg.core.registration.user_for(uow, "telegram", me.chat)


async def conversation_of(tg: Telegram, me: TgUser) -> Any:
    async with tg.core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(conversations).where(
            conversations.c.channel == "telegram", conversations.c.chat_id == me.chat))).one()


async def register_in_chat(me: TgUser, phone: str) -> None:
    """Menu -> own contact -> SMS code -> agree: the account exists and KYC is offered."""
    await me.say("/start")
    await me.tap("menu:invest")
    await me.share_contact(f"86{phone}")
    await me.say(me.tg.core.sms.last_code(f"+86{phone}"))
    (done,) = await me.tap("reg:agree")
    assert actions(done) == ["menu:kyc"]


async def wallet(core: Any, user_id: int) -> Any:
    async with core.uow(read_only=True) as uow:
        return await core.wallet.summary(uow, user_id)


def yuan(amount: Any) -> str:
    return f"{amount:,.2f}"


# 1. An investor from the first message to the portfolio ---------------------------------------


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_new_investor_registers_verifies_binds_tops_up_and_invests_in_telegram(
        core, tmp_path, locale):
    async with telegram(core, tmp_path) as tg:
        me = tg.user(locale)
        (welcome,) = await me.say("/start spring_2026")
        assert welcome["text"] == me.t("welcome") and "menu:invest" in actions(welcome)

        # Registration, with the phone shared as a contact (Telegram sends it without "+").
        (ask,) = await me.tap("menu:invest")
        assert ask["text"] == me.t("reg_ask_phone")
        (sent,) = await me.share_contact("8613912345678")
        assert sent["text"] == me.t("reg_code_sent", phone="139****5678")
        (consent,) = await me.say(core.sms.last_code("+8613912345678"))
        assert actions(consent) == ["reg:agree", "reg:decline"]
        (done,) = await me.tap("reg:agree")
        user_id = await user_of(tg, me)
        async with core.uow(read_only=True) as uow:
            user = (await uow.conn.execute(select(users).where(users.c.id == user_id))).one()
            identity = (await uow.conn.execute(select(channel_identities).where(
                channel_identities.c.external_id == me.chat))).one()
        assert user.is_investor and user.first_campaign == "spring_2026"
        assert identity.campaign == "spring_2026" and identity.user_id == user_id
        assert done["text"] == me.t("reg_done", referral=user.referral_code)
        assert actions(done) == ["menu:kyc"]

        # Identity verification; the provider's answer comes as a notice with the next step.
        (ask_name,) = await me.tap("menu:kyc")
        assert ask_name["text"] == me.t("kyc_ask_name")
        (kind,) = await me.say("张三")
        assert actions(kind) == ["kyc:resident_id", "kyc:passport"]
        (ask_id,) = await me.tap("kyc:resident_id")
        assert ask_id["text"] == me.t("kyc_ask_resident_id")
        number = resident_id()
        (submitted,) = await me.say(number)
        assert submitted["text"] == me.t("kyc_submitted", name="张*",
                                         id=f"{number[:3]}***********{number[-4:]}")
        assert actions(submitted) == ["flow:risk"]
        await core.kyc.process_pending(core.uow)
        await relay(tg)
        told = me.new()  # with the welcome gift that verification unlocks
        assert texts(told) == await rendered_notices(tg, user_id, locale)
        (verified,) = [m for m in told if m["text"] == me.t("notice_kyc_result_verified")]
        assert actions(verified) == ["flow:card"]

        # A bank card, confirmed with the code the bank texts to the reserved phone.
        (ask_card,) = await me.tap("flow:card")
        assert ask_card["text"] == me.t("card_ask_number")
        digits = card("622588")
        label = f"{BANK[locale]} ···· {digits[-4:]}"
        (ask_phone,) = await me.say(digits)
        assert ask_phone["text"] == me.t("card_ask_phone", card=label)
        (bank_sent,) = await me.say("13700001111")
        assert bank_sent["text"] == me.t("card_bank_code_sent", phone="137****1111", card=label)
        (bound,) = await me.say(core.sms.last_code("+8613700001111"))
        assert bound["text"] == me.t("card_bound", card=label)
        async with core.uow(read_only=True) as uow:
            status = (await uow.conn.execute(select(bank_cards.c.status).where(
                bank_cards.c.user_id == user_id))).scalar_one()
        assert status == "active"

        # The risk questionnaire, one button per question (the button under the KYC message).
        questions = core.risk.questionnaire.questions
        intro, first = await me.tap("flow:risk")
        assert intro["text"] == me.t("risk_intro")
        assert actions(first) == [f"risk:{questions[0].id}:{o.id}" for o in questions[0].options]
        answers = {q.id: q.options[-1].id for q in questions}
        for question in questions:
            (reply,) = await me.tap(f"risk:{question.id}:{answers[question.id]}")
        level = core.risk.questionnaire.score(answers).level
        async with core.uow(read_only=True) as uow:
            profile = (await uow.conn.execute(select(risk_profiles).where(
                risk_profiles.c.user_id == user_id))).one()
        assert profile.level == level
        assert reply["text"] == me.t(
            "risk_result", level=level, name=me.t(f"risk_level_{level}"),
            max_risk=core.risk.questionnaire.max_product_risk(level),
            expires=add_months(core.clock.now(), core.risk.questionnaire.validity_months)
            .date().isoformat())

        # The marketplace: no money yet, so the confirmation offers a top-up.
        _, loan_id = await listed_loan(core, "10000")
        (menu,) = await me.say("/start")
        assert menu["text"] == me.t("welcome")
        (listing,) = await me.tap("menu:invest")  # a registered investor goes to the listings
        assert f"loan:{loan_id}" in actions(listing)
        (detail,) = await me.tap(f"loan:{loan_id}")
        assert actions(detail) == [f"invest:{loan_id}", "back"] and "10,000.00" in detail["text"]
        (amount,) = await me.tap(f"invest:{loan_id}")
        assert "0.00" in amount["text"]  # the available balance
        await me.say("1,000")
        (short,) = await me.tap("invest:confirm")
        assert actions(short) == ["flow:top_up", "invest:confirm", "invest:cancel"]

        (ask_top_up,) = await me.tap("flow:top_up")
        assert ask_top_up["text"] == me.t("topup_ask_amount", minimum="10.00")
        (created,) = await me.say("2000")
        async with core.uow(read_only=True) as uow:
            order = (await uow.conn.execute(select(payment_orders).where(
                payment_orders.c.user_id == user_id))).one()
        assert order.kind == "top_up" and order.status == "pending"
        assert order.amount == cny("2000").amount
        assert created["text"] == me.t("topup_created", amount="2,000.00", order=order.id)
        assert (await wallet(core, user_id)).available == cny("0")  # until the bank confirms
        await core.bank.settle(order.bank_ref, succeeded=True)
        assert (await wallet(core, user_id)).available == cny("2000")

        # Invest after the confirmation with expected interest and the risk warning.
        await me.tap("flow:browse")
        await me.tap(f"loan:{loan_id}")
        (amount,) = await me.tap(f"invest:{loan_id}")
        assert "2,000.00" in amount["text"]
        (confirm,) = await me.say("1,000")
        async with core.uow(read_only=True) as uow:
            loan = (await uow.conn.execute(select(loans).where(loans.c.id == loan_id))).one()
        borrower = build_schedule(cny("10000.00"), loan.annual_rate, loan.term_months,
                                  loan.method, core.clock.today())
        mine = investor_schedules(borrower, [cny("1000.00"), cny("9000.00")])[0]
        interest = sum((line.interest for line in mine), Money.zero())
        assert confirm["text"] == me.t(
            "invest_confirm", loan_id=loan_id, amount="1,000.00", interest=yuan(interest.amount),
            method=me.t(f"invest_method_{loan.method}"), months=len(mine),
            first_due=mine[0].due_date.isoformat(), risk=loan.risk_level,
            warning=me.t("invest_risk_warning"))
        assert actions(confirm) == ["invest:confirm", "invest:cancel"]
        (invested,) = await me.tap("invest:confirm")
        assert invested["text"] == me.t("invest_done", amount="1,000.00", paid="1,000.00",
                                        loan_id=loan_id, remaining="9,000.00")
        async with core.uow(read_only=True) as uow:
            bid = (await uow.conn.execute(select(bids).where(bids.c.investor_id == user_id))
                   ).one()
        assert (bid.loan_id, bid.amount, bid.status) == (loan_id, cny("1000").amount, "frozen")
        money = await wallet(core, user_id)
        assert (money.available, money.frozen) == (cny("1000"), cny("1000"))

        (summary,) = await me.tap("flow:portfolio")
        assert summary["text"] == me.t(
            "portfolio_summary", frozen="1,000.00", invested="0.00", outstanding="0.00",
            received="0.00", receivable="0.00", losses="0.00", compensation="0.00",
            annual=me.t("portfolio_return_none"), receipts=me.t("portfolio_no_receipts"))


# 2. Someone else's contact -------------------------------------------------------------------


async def asked_for_phone(tg: Telegram) -> TgUser:
    """An English user who chose to invest and is asked for a phone number."""
    me = tg.user("en")
    await me.say("/start")
    (ask,) = await me.tap("menu:invest")
    assert ask["text"] == me.t("reg_ask_phone")
    return me


async def test_a_contact_that_is_not_the_senders_own_is_refused_and_registers_nothing(
        core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        me = await asked_for_phone(tg)
        (refused,) = await me.share_contact("8613912345678", own=False)
        assert refused["text"] == me.t("contact_not_yours")
        assert core.sms.last_code("+8613912345678") is None
        async with core.uow(read_only=True) as uow:
            registered = (await uow.conn.execute(select(users.c.id))).all()
        assert registered == [] and await user_of(tg, me) is None
        (sent,) = await me.share_contact("8613912345678")  # still at the phone step
        assert sent["text"] == me.t("reg_code_sent", phone="139****5678")


# Telegram gives a shared contact's number in international form, often without the "+"
# ("447911123456"): it must be read as international, not as a number of the default region.
async def test_a_shared_contact_without_a_plus_is_read_as_an_international_number(
        core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        me = await asked_for_phone(tg)
        (sent,) = await me.share_contact("447911123456")
        assert sent["text"] == me.t("reg_code_sent", phone="+44******3456")
        assert core.sms.last_code("+447911123456") is not None


# 3. A borrower: apply, funded, reminded, repay -------------------------------------------------


async def test_a_borrower_applies_is_funded_reminded_in_their_language_and_repays_in_telegram(
        core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        me = tg.user("en")
        person = await onboard(core, roles={"borrower"}, external_id=me.chat)
        await me.say("/start")
        (none,) = await me.tap("menu:borrow")
        assert none["text"] == me.t("loans_none") and actions(none) == ["flow:apply"]

        (products,) = await me.tap("flow:apply")
        assert "apply:product:consumer" in actions(products)
        await me.tap("apply:product:consumer")
        await me.say("10,000")
        await me.tap("apply:term:12")
        await me.tap("apply:method:equal_installment")
        purpose = "装修 <新房> & 家具"  # echoed in the summary exactly as typed
        await me.say(purpose)
        await me.say("30000")
        await me.tap("apply:job:civil_servant")
        await me.say("8")
        await me.tap("apply:none")
        await me.say("0")
        (summary,) = await me.tap("apply:docs:2")
        assert purpose in summary["text"] and "10,000.00" in summary["text"]
        assert actions(summary) == ["apply:confirm", "apply:cancel"]
        (decision,) = await me.tap("apply:confirm")
        async with core.uow(read_only=True) as uow:
            loan = (await uow.conn.execute(select(loans).where(
                loans.c.borrower_id == person.user_id))).one()
        assert loan.status == "listed" and loan.amount == cny("10000").amount
        assert decision["text"] == me.t("apply_approved", loan_id=loan.id,
                                        rate=f"{loan.annual_rate * 100:.2f}", grade=loan.grade,
                                        risk=loan.risk_level)

        for n, share in enumerate(("6000", "4000")):  # investors fill it: disbursed at once
            lender = await investor(core, share)
            async with core.uow() as uow:
                await core.investing.invest(uow, BidRequest(lender.user_id, loan.id, cny(share),
                                                            f"fill-{n}"))
                await uow.commit()
        first = (await schedule(core, loan.id))[0]
        async with core.uow(read_only=True) as uow:
            status = (await uow.conn.execute(select(loans.c.status).where(
                loans.c.id == loan.id))).scalar_one()
        assert status == "active"

        await relay(tg)
        told = me.new()
        assert texts(told) == await rendered_notices(tg, person.user_id, "en")
        (disbursed,) = [m for m in told if m["text"].startswith(f"Loan #{loan.id} has been")]
        assert "CNY 10000.00" in disbursed["text"]
        assert f"CNY {first.principal + first.interest:.2f}" in disbursed["text"]
        assert first.due_date.isoformat() in disbursed["text"]
        assert actions(disbursed) == ["flow:my_loans"]

        # Three days before the due date the daily job plans a reminder for the morning.
        reminder_day = first.due_date - timedelta(days=3)
        await run_day(core, reminder_day)
        await relay(tg)
        assert me.new() == []  # not before the reminder hour
        set_day(core, reminder_day, time(10, 30))
        await relay(tg)
        (reminder,) = me.new()
        owed = me.t("notice_money", amount=f"{first.principal + first.interest:.2f}")
        assert reminder["text"] == me.t("notice_repayment_reminder", period=1, loan_id=loan.id,
                                        amount=owed, due_date=first.due_date.isoformat())
        assert actions(reminder) == ["flow:my_loans", "talk_to_human"]

        (mine,) = await me.tap("flow:my_loans")  # "Repay now" under the reminder
        assert actions(mine) == [f"repay:{loan.id}", f"schedule:{loan.id}",
                                 f"agreement:{loan.id}"]
        (ask,) = await me.tap(f"repay:{loan.id}")
        assert actions(ask) == ["repay:due", "repay:settle"]
        (confirm,) = await me.tap("repay:due")
        assert yuan(first.principal + first.interest) in confirm["text"]
        (repaid,) = await me.tap("repay:confirm")
        assert repaid["text"] == me.t(
            "repay_done", loan_id=loan.id, amount=yuan(first.principal + first.interest),
            principal=yuan(first.principal), interest=yuan(first.interest), penalty="0.00")
        async with core.uow(read_only=True) as uow:
            paid = (await uow.conn.execute(select(installments.c.status).where(
                installments.c.loan_id == loan.id, installments.c.period == 1))).scalar_one()
        assert paid == "paid"


# 4. The FAQ and a human agent -------------------------------------------------------------------


async def test_faq_answers_misses_offer_a_human_and_an_agent_takes_over_and_hands_back(
        core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        me = tg.user("zh-CN")
        question = "提现多久能到账啊？"
        found = tg.engine.kb.match(question, "zh-CN")
        assert found is not None and found.score >= CONFIDENT
        answer = tg.engine.kb.articles[found.article_id].answer_in("zh-CN")
        (answered,) = await me.say(question)
        assert answered["text"] == answer and actions(answered)[-1] == "talk_to_human"

        (miss,) = await me.say("今天天气怎么样")
        assert miss["text"] == me.t("faq_miss") and actions(miss) == ["talk_to_human"]
        (again,) = await me.say("给我讲个笑话吧")
        assert again["text"] == me.t("faq_miss_again") and actions(again) == ["talk_to_human"]
        (queued,) = await me.tap("talk_to_human")
        assert queued["text"] == me.t("human_queued", ahead=0)
        conversation = await conversation_of(tg, me)
        assert (conversation.mode, conversation.handover_reason) == ("queued", "asked")

        desk = AgentDesk(tg.engine)

        async def agent(step) -> list[dict[str, Any]]:
            async with core.uow() as uow:
                await step(uow)
                await uow.commit()
            tg.adapter.sender.poke()
            await tg.idle()
            return me.new()

        (joined,) = await agent(lambda uow: desk.take(uow, conversation.id, "Alice"))
        assert joined["text"] == me.t("agent_joined", agent="Alice")
        assert await me.say("你好，在吗？") == []  # the agent reads it; the bot stays quiet
        assert (await conversation_of(tg, me)).mode == "human"
        typed = "您好 <Alice> & 我来帮您查一下"
        (said,) = await agent(lambda uow: desk.say(uow, conversation.id, "Alice", typed))
        assert said["text"] == typed
        (left,) = await agent(lambda uow: desk.hand_back(uow, conversation.id))
        assert left["text"] == me.t("agent_left")
        assert actions(left) == ["menu:invest", "menu:borrow", "menu:faq", "menu:human",
                                 "menu:language"]
        (back,) = await me.say(question)
        assert back["text"] == answer
        assert (await conversation_of(tg, me)).mode == "bot"


# While an agent holds the chat the bot stays quiet, but a photo the agent asked for is kept
# (encrypted) as in any other mode, and the transcript says a file came.
async def test_a_photo_sent_to_an_agent_is_kept_while_the_bot_stays_quiet(core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        me = tg.user("en")
        person = await register(core, external_id=me.chat)
        (queued,) = await me.say("/human")
        assert queued["text"] == me.t("human_queued", ahead=0)
        desk = AgentDesk(tg.engine)
        async with core.uow() as uow:
            await desk.take(uow, (await conversation_of(tg, me)).id, "Alice")
            await uow.commit()
        tg.adapter.sender.poke()
        await tg.idle()
        me.new()
        assert await me.send_photo(JPEG) == []
        async with core.uow(read_only=True) as uow:
            kept = (await uow.conn.execute(select(documents.c.user_id, documents.c.size))).all()
            said = (await uow.conn.execute(select(chat_messages.c.text).where(
                chat_messages.c.sender == "user").order_by(chat_messages.c.id.desc()).limit(1))
                    ).scalar_one()
        assert [tuple(row) for row in kept] == [(person.user_id, len(JPEG))]
        assert said == f"[file image/jpeg, {len(JPEG)} bytes]"


# 5. Photos ------------------------------------------------------------------------------------


async def test_a_photo_during_kyc_is_kept_encrypted_and_one_from_a_stranger_is_refused(
        core, tmp_path):
    async with telegram(core, tmp_path) as tg:
        stranger = tg.user("en")
        (refused,) = await stranger.send_photo(JPEG)
        assert refused["text"] == stranger.t("document_needs_account")
        assert actions(refused) == ["menu:invest", "menu:borrow"]

        me = tg.user("zh-CN")
        await register_in_chat(me, "13912340000")
        await me.tap("menu:kyc")
        (saved,) = await me.send_photo(JPEG)
        assert saved["text"] == me.t("document_saved")
        user_id = await user_of(tg, me)
        async with core.uow(read_only=True) as uow:
            (row,) = (await uow.conn.execute(select(documents))).all()
            content_type, data = await core.kyc.read_document(uow, row.id)
        assert (row.user_id, row.kind, row.content_type, row.size) == (
            user_id, "id_front", "image/jpeg", len(JPEG))
        assert JPEG not in row.data_enc and (content_type, data) == ("image/jpeg", JPEG)
        (kind,) = await me.say("张三")  # the KYC step it was at goes on
        assert actions(kind) == ["kyc:resident_id", "kyc:passport"]
