"""Personal data never reaches the logs, and is shown only masked."""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import select

from core.adapters.tables import bank_cards, identities, users
from core.domain.money import Money
from tests.integration.accounts_helpers import bind_card, register, verify


async def test_a_whole_onboarding_logs_no_phone_id_or_card_number(core, caplog):
    caplog.set_level(logging.DEBUG)
    person = await register(core)
    await verify(core, person, name="欧阳娜娜")
    await bind_card(core, person)
    async with core.uow() as uow:
        order = await core.wallet.request_top_up(uow, person.user_id,
                                                 Money.of(Decimal("100.00")), "k")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        ref = (await core.wallet.order(uow, order.id)).bank_ref
    await core.bank.settle(ref, succeeded=True)

    text = caplog.text
    assert caplog.records, "nothing was logged at all: the scan would prove nothing"
    for secret in (person.phone, person.id_number, person.card, person.card[:12], "欧阳娜娜"):
        assert secret not in text
    async with core.uow(read_only=True) as uow:
        shown = (await uow.conn.execute(select(users.c.phone_masked))).scalar_one()
        name, number = (await uow.conn.execute(
            select(identities.c.name_masked, identities.c.id_masked))).one()
        raw_columns = (await uow.conn.execute(select(bank_cards))).one()
    assert shown == f"{person.phone[:3]}****{person.phone[-4:]}"
    assert name == "欧***"
    assert number == person.id_number[:3] + "*" * 11 + person.id_number[-4:]
    assert person.card not in repr(tuple(raw_columns))
