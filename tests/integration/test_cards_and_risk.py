"""Bank cards bound through the custody bank; the investor risk profile and suitability."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.adapters.tables import analytics_events, bank_cards, outbox, risk_flags
from core.domain.errors import (
    CardBindingFailed,
    CardHolderMismatch,
    InvalidCardNumber,
    InvalidVerificationCode,
    KycRequired,
    RiskAssessmentRequired,
    SuitabilityMismatch,
    UnsupportedBank,
)
from tests.integration.accounts_helpers import bind_card, card, phone, register, verify


async def start_binding(core, user_id, number, **kwargs):
    async with core.uow() as uow:
        try:
            return await core.cards.start_binding(uow, user_id, card_number=number,
                                                  reserved_phone=kwargs.pop("reserved", phone()),
                                                  **kwargs)
        finally:
            await uow.commit()


async def test_a_verified_user_binds_a_card_with_the_banks_code(core):
    person = await verify(core, await register(core))
    number = card("622588")
    await bind_card(core, person, number)
    async with core.uow(read_only=True) as uow:
        active = await core.cards.active_card(uow, person.user_id)
        stored = (await uow.conn.execute(select(bank_cards.c.card_enc))).scalar_one()
        notice = (await uow.conn.execute(select(outbox.c.template))).scalars().all()
        events = (await uow.conn.execute(select(analytics_events.c.name))).scalars().all()
    assert active.label(core.bins) == f"招商银行 ···· {number[-4:]}"
    assert number.encode() not in stored
    assert "security_card_bound" in notice
    assert "card_bound" in events


async def test_binding_needs_real_name_verification_first(core):
    person = await register(core)
    with pytest.raises(KycRequired):
        await start_binding(core, person.user_id, card())


@pytest.mark.parametrize(("number", "error"), [
    ("6225 8800 0000 1001", InvalidCardNumber),  # Luhn fails
    ("62258800000", InvalidCardNumber),  # too short
    ("6225-88OO-0000-1009", InvalidCardNumber),  # letters
])
async def test_bad_card_numbers_are_refused(core, number, error):
    person = await verify(core, await register(core))
    with pytest.raises(error):
        await start_binding(core, person.user_id, number)


async def test_a_card_of_an_unknown_bank_is_refused(core):
    person = await verify(core, await register(core))
    with pytest.raises(UnsupportedBank):
        await start_binding(core, person.user_id, card("999999"))


async def test_a_card_in_another_name_is_refused(core):
    person = await verify(core, await register(core))
    with pytest.raises(CardHolderMismatch):
        await start_binding(core, person.user_id, card(), holder_name="赵六")


async def test_a_wrong_bank_code_does_not_bind(core):
    person = await verify(core, await register(core))
    pending = await start_binding(core, person.user_id, card())
    with pytest.raises(CardBindingFailed):
        await core.cards.confirm_binding(core.uow, person.user_id, pending.id, "000000x")
    async with core.uow(read_only=True) as uow:
        assert await core.cards.active_card(uow, person.user_id) is None


async def test_changing_the_card_needs_a_fresh_code_to_the_registered_phone(core):
    person = await bind_card(core, await verify(core, await register(core)))
    with pytest.raises(InvalidVerificationCode):
        await start_binding(core, person.user_id, card())
    core.clock.advance(timedelta(minutes=1))
    async with core.uow() as uow:
        await core.registration.request_code(uow, person.phone, purpose="change_card")
        await uow.commit()
    code = core.sms.last_code("+86" + person.phone)
    new_number = card("622202", 19)
    reserved = phone()
    pending = await start_binding(core, person.user_id, new_number, change_code=code,
                                  reserved=reserved)
    bank_code = core.sms.last_code("+86" + reserved)
    await core.cards.confirm_binding(core.uow, person.user_id, pending.id, bank_code)
    async with core.uow(read_only=True) as uow:
        active = await core.cards.active_card(uow, person.user_id)
        statuses = (await uow.conn.execute(select(bank_cards.c.status).order_by(
            bank_cards.c.id))).scalars().all()
    assert active.last4 == new_number[-4:]
    assert statuses == ["replaced", "active"]


async def test_one_card_on_two_accounts_is_flagged(core):
    number = card()
    first = await verify(core, await register(core), name="张三")
    second = await verify(core, await register(core), name="张三")
    await bind_card(core, first, number)
    await start_binding(core, second.user_id, number)
    async with core.uow(read_only=True) as uow:
        kinds = (await uow.conn.execute(select(risk_flags.c.kind))).scalars().all()
    assert "shared_card" in kinds




async def answers(core, pick: str) -> dict[str, str]:
    return {q.id: (q.options[0].id if pick == "low" else q.options[-1].id)
            for q in core.risk.questionnaire.questions}


async def test_the_questionnaire_sets_a_level_that_limits_what_may_be_bought(core):
    person = await register(core)
    async with core.uow() as uow:
        with pytest.raises(RiskAssessmentRequired):
            await core.risk.require_suitable(uow, person.user_id, "R1")
        profile = await core.risk.assess(uow, person.user_id, await answers(core, "low"))
        await uow.commit()
    assert profile.level == "C1"
    async with core.uow(read_only=True) as uow:
        assert await core.risk.require_suitable(uow, person.user_id, "R1") == "C1"
        with pytest.raises(SuitabilityMismatch) as refused:
            await core.risk.require_suitable(uow, person.user_id, "R3")
    assert refused.value.params["level"] == "C1"


async def test_a_risk_profile_expires_after_twelve_months(core):
    person = await register(core)
    async with core.uow() as uow:
        await core.risk.assess(uow, person.user_id, await answers(core, "high"))
        await uow.commit()
    core.clock.advance(timedelta(days=366))
    async with core.uow(read_only=True) as uow:
        assert await core.risk.current(uow, person.user_id) is None
        with pytest.raises(RiskAssessmentRequired):
            await core.risk.require_suitable(uow, person.user_id, "R1")


async def test_every_account_behind_a_shared_card_is_flagged(core):
    number = card()
    people = [await verify(core, await register(core), name="张三") for _ in range(3)]
    await bind_card(core, people[0], number)
    for person in people[1:]:
        await start_binding(core, person.user_id, number)
    async with core.uow(read_only=True) as uow:
        flagged = set((await uow.conn.execute(select(risk_flags.c.user_id).where(
            risk_flags.c.kind == "shared_card"))).scalars())
    assert flagged == {p.user_id for p in people}


async def test_a_binding_started_before_another_card_was_bound_cannot_replace_it(core):
    person = await verify(core, await register(core))
    first_phone, second_phone = phone(), phone()
    first = await start_binding(core, person.user_id, card(), reserved=first_phone)
    second = await start_binding(core, person.user_id, card("622202", 19),
                                 reserved=second_phone)
    await core.cards.confirm_binding(core.uow, person.user_id, first.id,
                                     core.sms.last_code("+86" + first_phone))
    with pytest.raises(CardBindingFailed):
        await core.cards.confirm_binding(core.uow, person.user_id, second.id,
                                         core.sms.last_code("+86" + second_phone))
    async with core.uow(read_only=True) as uow:
        assert (await core.cards.active_card(uow, person.user_id)).id == first.id
