"""Registration through the core services: first touch, phone codes, consents, referrals."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.adapters.tables import analytics_events, channel_identities, consents, users
from core.domain.errors import (
    ConsentRequired,
    DailyCodeLimit,
    InvalidPhone,
    InvalidVerificationCode,
    ResendTooSoon,
    TooManyAttempts,
    UnknownReferralCode,
    VerificationCodeExpired,
)
from tests.integration.accounts_helpers import ACCEPTED, phone, register


async def events(core) -> list[str]:
    async with core.uow(read_only=True) as uow:
        return list((await uow.conn.execute(
            select(analytics_events.c.name).order_by(analytics_events.c.id))).scalars())


async def start(core, number: str, channel: str = "telegram", campaign: str | None = None):
    async with core.uow() as uow:
        identity = await core.registration.touch(uow, channel, f"c-{number}", campaign=campaign)
        masked = await core.registration.request_code(uow, number)
        await uow.commit()
    return identity, masked


async def try_register(core, identity, number, code, **kwargs):
    """Like the chat does: a refused try is answered, and the turn still commits."""
    async with core.uow() as uow:
        try:
            return await core.registration.register(
                uow, identity, phone_text=number, code=code, roles={"investor"},
                accepted=kwargs.pop("accepted", ACCEPTED), **kwargs)
        finally:
            await uow.commit()


async def test_a_new_investor_registers_with_the_code_sent_to_their_phone(core):
    number = phone()
    identity, masked = await start(core, number, campaign="spring-ads")
    assert masked == f"{number[:3]}****{number[-4:]}"
    code = core.sms.last_code("+86" + number)
    assert code is not None and len(code) == 6
    done = await try_register(core, identity, number, code)
    assert done.created and len(done.referral_code) == 8
    async with core.uow(read_only=True) as uow:
        user = (await uow.conn.execute(select(users).where(users.c.id == done.user_id))).one()
        accepted = (await uow.conn.execute(select(consents.c.document, consents.c.version)
                                           .where(consents.c.user_id == done.user_id))).all()
    assert user.is_investor and not user.is_borrower
    assert user.first_channel == "telegram" and user.first_campaign == "spring-ads"
    assert user.phone_masked == masked
    assert number.encode() not in user.phone_enc  # encrypted at rest
    assert sorted(accepted) == [("risk_disclosure", "2026-01"), ("user_agreement", "2026-01")]
    assert await events(core) == ["first_visit", "registered"]


async def test_first_touch_attribution_is_kept_when_the_same_chat_comes_back(core):
    async with core.uow() as uow:
        first = await core.registration.touch(uow, "webchat", "s-1", campaign="weibo")
        again = await core.registration.touch(uow, "webchat", "s-1", campaign="baidu")
        await uow.commit()
    assert first.created and not again.created
    assert again.campaign == "weibo"
    assert await events(core) == ["first_visit"]


async def test_the_same_phone_from_a_second_channel_links_to_the_same_user(core):
    number = phone()
    person = await register(core, number=number, channel="telegram")
    core.clock.advance(timedelta(minutes=2))
    identity, _ = await start(core, number, channel="webchat")
    done = await try_register(core, identity, number, core.sms.last_code("+86" + number))
    assert not done.created and done.user_id == person.user_id
    async with core.uow(read_only=True) as uow:
        linked = (await uow.conn.execute(select(channel_identities.c.channel).where(
            channel_identities.c.user_id == person.user_id))).scalars().all()
    assert sorted(linked) == ["telegram", "webchat"]


@pytest.mark.parametrize("text", ["12345", "1381234567a", "+1 555", "", "23812345678"])
async def test_an_invalid_phone_number_is_refused_before_any_code_is_sent(core, text):
    with pytest.raises(InvalidPhone):
        await start(core, text)
    assert core.sms.messages == []


async def test_a_code_expires_after_five_minutes(core):
    number = phone()
    identity, _ = await start(core, number)
    code = core.sms.last_code("+86" + number)
    core.clock.advance(timedelta(minutes=5))
    with pytest.raises(VerificationCodeExpired):
        await try_register(core, identity, number, code)


async def test_five_wrong_codes_lock_the_code_even_the_right_one(core):
    number = phone()
    identity, _ = await start(core, number)
    code = core.sms.last_code("+86" + number)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    lefts = []
    for _ in range(4):
        with pytest.raises(InvalidVerificationCode) as refused:
            await try_register(core, identity, number, wrong)
        lefts.append(refused.value.params["attempts_left"])
    assert lefts == [4, 3, 2, 1]
    with pytest.raises(TooManyAttempts):
        await try_register(core, identity, number, wrong)
    with pytest.raises(TooManyAttempts):
        await try_register(core, identity, number, code)


async def test_misses_count_even_when_the_caller_rolls_back(core):
    number = phone()
    identity, _ = await start(core, number)
    code = core.sms.last_code("+86" + number)
    for _ in range(5):
        async with core.uow() as uow:  # never commits
            with pytest.raises((InvalidVerificationCode, TooManyAttempts)):
                await core.registration.register(uow, identity, phone_text=number,
                                                 code="000000" if code != "000000" else "111111",
                                                 roles={"investor"}, accepted=ACCEPTED)
    with pytest.raises(TooManyAttempts):
        await try_register(core, identity, number, code)


async def test_a_new_code_waits_sixty_seconds_and_ten_a_day(core):
    number = phone()
    await start(core, number)
    with pytest.raises(ResendTooSoon) as early:
        await start(core, number)
    assert 1 <= early.value.params["seconds"] <= 60
    for _ in range(9):
        core.clock.advance(timedelta(seconds=61))
        await start(core, number)
    core.clock.advance(timedelta(seconds=61))
    with pytest.raises(DailyCodeLimit):
        await start(core, number)
    assert len(core.sms.inbox("+86" + number)) == 10


async def test_registration_needs_both_current_documents_accepted(core):
    number = phone()
    identity, _ = await start(core, number)
    code = core.sms.last_code("+86" + number)
    with pytest.raises(ConsentRequired) as refused:
        await try_register(core, identity, number, code,
                           accepted={"user_agreement": "2026-01", "risk_disclosure": "2025-01"})
    assert refused.value.params == {"document": "risk_disclosure", "version": "2026-01"}
    done = await try_register(core, identity, number, code)  # the code was not consumed
    assert done.created


async def test_a_referral_code_links_the_new_user_to_the_referrer(core):
    referrer = await register(core)
    async with core.uow(read_only=True) as uow:
        own = (await uow.conn.execute(select(users.c.referral_code).where(
            users.c.id == referrer.user_id))).scalar_one()
    referee = await register(core, referral_code=own.lower())
    async with core.uow(read_only=True) as uow:
        row = (await uow.conn.execute(select(users.c.referred_by).where(
            users.c.id == referee.user_id))).one()
    assert row.referred_by == referrer.user_id
    number = phone()
    identity, _ = await start(core, number)
    with pytest.raises(UnknownReferralCode):
        await try_register(core, identity, number, core.sms.last_code("+86" + number),
                           referral_code="NOPE1234")


async def test_forty_guesses_at_once_get_five_tries_and_not_the_account(core):
    victim = await register(core)
    core.clock.advance(timedelta(minutes=2))
    async with core.uow() as uow:  # someone else asks for a code for the victim's phone
        attacker = await core.registration.touch(uow, "webchat", "attacker")
        await core.registration.request_code(uow, victim.phone)
        await uow.commit()
    real = core.sms.last_code("+86" + victim.phone)
    guesses = [f"{(int(real) + k) % 1_000_000:06d}" for k in range(1, 40)] + [real]

    async def attempt(code):
        try:
            async with core.uow() as uow:
                done = await core.registration.register(
                    uow, attacker, phone_text=victim.phone, code=code, roles={"investor"},
                    accepted=ACCEPTED)
                await uow.commit()
                return done.user_id
        except (InvalidVerificationCode, TooManyAttempts) as exc:
            return type(exc).__name__

    results = await asyncio.gather(*(attempt(c) for c in guesses))
    assert results.count("InvalidVerificationCode") == 4
    assert results.count("TooManyAttempts") == 36
    assert victim.user_id not in results
