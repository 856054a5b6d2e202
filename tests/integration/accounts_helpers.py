"""Building blocks for account tests: valid documents and a fully onboarded user."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from core.bootstrap import Core
from core.services.registration import ChannelIdentity

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_serial = itertools.count(100)


def resident_id(birth: str = "19900307", region: str = "110105", seq: str | None = None) -> str:
    """A resident ID number with a correct ISO 7064 MOD 11-2 check character."""
    body = f"{region}{birth}{seq or f'{next(_serial) % 1000:03d}'}"
    total = sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


def card(bin_prefix: str = "622588", length: int = 16, serial: int | None = None) -> str:
    """A Luhn-valid card number on a known BIN (622588: China Merchants Bank)."""
    body = bin_prefix + f"{serial if serial is not None else next(_serial):0{length - 7}d}"[
        -(length - 1 - len(bin_prefix)):]
    digits = [int(d) for d in body]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return body + str((10 - total % 10) % 10)


_phones = itertools.count(10_000_000)
_chats = itertools.count(1)


def phone() -> str:
    return f"139{next(_phones):08d}"


@dataclass
class Person:
    user_id: int
    phone: str
    identity: ChannelIdentity
    name: str = ""
    id_number: str = ""
    card: str = ""


ACCEPTED = {"user_agreement": "2026-01", "risk_disclosure": "2026-01"}


async def register(core: Core, *, roles: set[str] | None = None, channel: str = "telegram",
                   external_id: str | None = None, campaign: str | None = None,
                   referral_code: str | None = None, number: str | None = None) -> Person:
    number = number or phone()
    async with core.uow() as uow:
        chat = external_id or f"chat-{next(_chats)}"
        identity = await core.registration.touch(uow, channel, chat, campaign=campaign)
        await core.registration.request_code(uow, number)
        await uow.commit()
    code = core.sms.last_code(core.registration.normalize_phone(number))
    async with core.uow() as uow:
        done = await core.registration.register(
            uow, identity, phone_text=number, code=code, roles=roles or {"investor"},
            accepted=ACCEPTED, referral_code=referral_code)
        await uow.commit()
    return Person(done.user_id, number, identity)


async def verify(core: Core, person: Person, name: str = "张三", id_number: str | None = None,
                 ) -> Person:
    person.name, person.id_number = name, id_number or resident_id()
    async with core.uow() as uow:
        await core.kyc.submit(uow, person.user_id, full_name=name, id_type="resident_id",
                              id_number=person.id_number)
        await uow.commit()
    await core.kyc.process_pending(core.uow)
    return person


async def bind_card(core: Core, person: Person, number: str | None = None) -> Person:
    person.card = number or card()
    reserved = phone()
    async with core.uow() as uow:
        pending = await core.cards.start_binding(uow, person.user_id, card_number=person.card,
                                                 reserved_phone=reserved)
        await uow.commit()
    code = core.sms.last_code(core.registration.normalize_phone(reserved))
    await core.cards.confirm_binding(core.uow, person.user_id, pending.id, code)
    return person


async def onboard(core: Core, **kwargs: object) -> Person:
    person = await register(core, **kwargs)
    await verify(core, person)
    return await bind_card(core, person)
