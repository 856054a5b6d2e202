"""Bank cards: bind the one card withdrawals go to, confirmed through the custody bank.

Binding: the card number is checked (digits, length, Luhn) and its bank recognised from the BIN
table; the holder must be the verified person; the custody bank texts a code to the phone it has
on file for the card (预留手机号) and the user types it back. Replacing an active card needs a
fresh verification code sent to the registered phone as well. A card seen on another account is
flagged for anti-fraud review.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update

from core import analytics, notify
from core.adapters.tables import bank_cards
from core.adapters.uow import UnitOfWork, UnitOfWorkFactory
from core.domain.errors import (
    BankUnavailable,
    CardBindingFailed,
    CardHolderMismatch,
    CardRequired,
    InvalidVerificationCode,
)
from core.domain.identity import (
    BankBins,
    card_label,
    mask_phone,
    normalize_card_number,
    validate_full_name,
)
from core.privacy import DataProtector
from core.providers.bank import CustodyBank
from core.services.flags import raise_flag
from core.services.kyc import Kyc
from core.services.registration import Registration

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Card:
    id: int
    bank_code: str
    last4: str
    status: str

    def label(self, bins: BankBins, locale: str = "zh-CN") -> str:
        """"招商银行 ···· 1234": the only way a card is ever shown."""
        bank = next(b for b in bins.banks if b.code == self.bank_code)
        return card_label(bank, self.last4, locale)


class Cards:
    def __init__(self, protector: DataProtector, bins: BankBins, bank: CustodyBank, kyc: Kyc,
                 registration: Registration, *, shared_card_accounts: int = 2) -> None:
        self.protector = protector
        self.bins = bins
        self.bank = bank
        self.kyc = kyc
        self.registration = registration
        self.shared_card_accounts = shared_card_accounts

    async def start_binding(self, uow: UnitOfWork, user_id: int, *, card_number: str,
                            reserved_phone: str, holder_name: str | None = None,
                            change_code: str | None = None) -> Card:
        """Check the card and ask the bank to text a code to its reserved phone."""
        person = await self.kyc.verified_person(uow, user_id)
        digits = normalize_card_number(card_number)
        bank = self.bins.lookup(digits)
        phone = self.registration.normalize_phone(reserved_phone)
        if holder_name is not None and validate_full_name(holder_name) != person.full_name:
            raise CardHolderMismatch("the card must be in your own name")
        active = await self.active_card(uow, user_id)
        if active is not None:
            if not change_code:
                raise InvalidVerificationCode("changing the card needs a verification code",
                                              purpose="change_card")
            own_phone = await self.registration.phone_of(uow, user_id)
            await self.registration.verify_code(uow, own_phone, change_code, "change_card")
        card_hash = self.protector.lookup_hash(digits, kind="card")
        phone_hash = self.protector.lookup_hash(phone, kind="phone")
        now = uow.clock.now()
        result = await uow.conn.execute(bank_cards.insert().values(
            user_id=user_id, card_enc=self.protector.seal(digits, context="card"),
            card_hash=card_hash, last4=digits[-4:], bank_code=bank.code,
            reserved_phone_hash=phone_hash, status="pending", created_at=now))
        card_id = int(result.inserted_primary_key[0])
        await self._flag_sharing(uow, user_id, card_hash, phone_hash)
        uow.after_commit.append(lambda: self._ask_bank(uow.factory, card_id, person.full_name,
                                                       person.id_number, digits, phone))
        return Card(card_id, bank.code, digits[-4:], "pending")

    async def _ask_bank(self, uow_factory: UnitOfWorkFactory, card_id: int, holder: str,
                        id_number: str, digits: str, phone: str) -> None:
        c = bank_cards.c
        try:
            ref = await self.bank.start_card_binding(holder, id_number, digits, phone)
        except BankUnavailable:
            log.warning("custody bank unavailable while binding card %s", card_id)
            ref = None
        async with uow_factory() as uow:
            values = {"bank_ref": ref} if ref else {"status": "failed", "ended_at": uow.clock.now()}
            await uow.conn.execute(update(bank_cards).where(c.id == card_id).values(**values))
            await uow.commit()
        log.info("card binding code sent to %s", mask_phone(phone))

    async def _flag_sharing(self, uow: UnitOfWork, user_id: int, card_hash: str,
                            phone_hash: str) -> None:
        c = bank_cards.c
        for kind, column, value in (("shared_card", c.card_hash, card_hash),
                                    ("shared_phone", c.reserved_phone_hash, phone_hash)):
            sharing = sorted(set((await uow.conn.execute(
                select(c.user_id).where(column == value))).scalars()))
            if len(sharing) >= self.shared_card_accounts:
                for account in sharing:  # every account behind it, not only the newest
                    await raise_flag(uow, kind, f"{kind}:{value}:{account}", user_id=account,
                                     details={"accounts": sharing})

    async def confirm_binding(self, uow_factory: UnitOfWorkFactory, user_id: int, card_id: int,
                              code: str) -> Card:
        """The user typed the bank's code: ``confirm`` in a transaction of its own."""
        async with uow_factory() as uow:
            card = await self.confirm(uow, user_id, card_id, code)
            await uow.commit()
        return card

    async def confirm(self, uow: UnitOfWork, user_id: int, card_id: int, code: str) -> Card:
        """The bank confirms the code and the card becomes the active one, in the caller's unit
        of work. ``CardBindingFailed`` with ``waiting=False`` when no binding waits for a code
        (start again), ``waiting=True`` when the bank refused this code (type it again)."""
        c = bank_cards.c
        row = (await uow.conn.execute(select(bank_cards).where(
            c.id == card_id, c.user_id == user_id))).first()
        if row is None or row.status != "pending" or row.bank_ref is None:
            raise CardBindingFailed("no card binding is waiting for a code", waiting=False)
        if not await self.bank.confirm_card_binding(row.bank_ref, code.strip()):
            raise CardBindingFailed("the bank did not accept the code", waiting=True)
        now = uow.clock.now()
        await uow.conn.execute(update(bank_cards).where(
            c.user_id == user_id, c.status == "active").values(status="replaced", ended_at=now))
        await uow.conn.execute(update(bank_cards).where(c.id == card_id).values(
            status="active", bound_at=now))
        # other bindings started earlier cannot later replace this card without a code
        await uow.conn.execute(update(bank_cards).where(
            c.user_id == user_id, c.status == "pending", c.id != card_id).values(
            status="failed", ended_at=now))
        await analytics.track(uow, "card_bound", user_id=user_id, props={"bank": row.bank_code})
        await notify.enqueue(uow, user_id, "security_card_bound",
                             {"bank_code": row.bank_code, "last4": row.last4},
                             dedupe_key=f"card_bound:{card_id}")
        return Card(card_id, row.bank_code, row.last4, "active")

    async def active_card(self, uow: UnitOfWork, user_id: int) -> Card | None:
        c = bank_cards.c
        row = (await uow.conn.execute(select(c.id, c.bank_code, c.last4, c.status).where(
            c.user_id == user_id, c.status == "active"))).first()
        return None if row is None else Card(row.id, row.bank_code, row.last4, row.status)

    async def require_card(self, uow: UnitOfWork, user_id: int) -> Card:
        card = await self.active_card(uow, user_id)
        if card is None:
            raise CardRequired("bind a bank card first")
        return card

    async def card_number(self, uow: UnitOfWork, card_id: int) -> str:
        row = (await uow.conn.execute(
            select(bank_cards.c.card_enc).where(bank_cards.c.id == card_id))).one()
        return self.protector.open_text(row.card_enc, context="card")
