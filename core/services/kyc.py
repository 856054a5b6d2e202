"""Real-name verification (实名认证): submit, check with the identity provider, decide.

States: unverified -> pending -> verified | rejected (with a reason). A submission is checked in
the background (``process_pending``); when the provider has no answer ("unavailable") the
submission stays pending and is asked again later with back-off - the user is told it is pending,
never asked to start again. One identity document belongs to one user: a second account with the
same number is refused and flagged for anti-fraud review.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select, update

from config.settings import KycSettings
from core import analytics, notify
from core.adapters.tables import documents, identities, users
from core.adapters.uow import UnitOfWork, UnitOfWorkFactory
from core.domain.errors import (
    DocumentTooLarge,
    IdentityAlreadyUsed,
    InvalidDocument,
    InvalidPassport,
    KycAlreadySubmitted,
    KycRequired,
    UnsupportedDocumentType,
)
from core.domain.identity import (
    check_age,
    mask_id_number,
    mask_name,
    validate_full_name,
    validate_passport,
    validate_resident_id,
)
from core.privacy import DataProtector
from core.providers.identity import IdentityOutcome, IdentityProvider
from core.services.flags import raise_flag

DOCUMENT_KINDS = frozenset({"id_front", "id_back", "income_proof", "employment_proof", "other"})
MAGIC = {  # what a file must start with to be what it claims
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "application/pdf": (b"%PDF-",),
}


@dataclass(frozen=True, slots=True)
class KycState:
    status: str  # unverified | pending | verified | rejected
    reason: str | None
    name_masked: str | None
    id_masked: str | None
    birth_date: date | None


@dataclass(frozen=True, slots=True)
class VerifiedPerson:
    """What other services may know of a verified user (the name only for matching cards)."""

    user_id: int
    full_name: str
    id_type: str
    id_number: str
    birth_date: date


class Kyc:
    def __init__(self, settings: KycSettings, protector: DataProtector,
                 provider: IdentityProvider) -> None:
        self.settings = settings
        self.protector = protector
        self.provider = provider
        # Called with (uow, user_id, identity hash) when a user is verified (sign-up rewards).
        self.on_verified: list[Callable[[UnitOfWork, int, str], Awaitable[Any]]] = []

    async def submit(self, uow: UnitOfWork, user_id: int, *, full_name: str, id_type: str,
                     id_number: str, country: str = "CHN",
                     birth_date: date | None = None) -> KycState:
        """Validate and store a submission; the check itself runs in ``process_pending``."""
        state = await self.state(uow, user_id)
        if state.status in ("pending", "verified"):
            raise KycAlreadySubmitted(f"verification is already {state.status}",
                                      status=state.status)
        name = validate_full_name(full_name)
        today = uow.clock.today()
        if id_type == "resident_id":
            rid = validate_resident_id(id_number, today)
            number, birth_date, country = rid.number, rid.birth_date, "CHN"
        elif id_type == "passport":
            passport = validate_passport(country, id_number)
            number, country = passport.number, passport.country
            if birth_date is None:
                raise InvalidPassport("a passport needs the holder's date of birth",
                                      reason="birth_date")
        else:
            raise ValueError(f"unknown id type {id_type!r}")
        user = (await uow.conn.execute(
            select(users.c.is_borrower).where(users.c.id == user_id))).one()
        if birth_date > today:
            raise InvalidPassport("the date of birth is in the future", reason="birth_date")
        check_age(birth_date, today, self.settings.minimum_age,
                      self.settings.borrower_maximum_age if user.is_borrower else None)
        id_hash = self.protector.lookup_hash(f"{country}:{number}", kind="identity")
        i = identities.c
        other = (await uow.conn.execute(select(i.user_id).where(
            i.id_hash == id_hash, i.status != "rejected", i.user_id != user_id))).first()
        if other is not None:
            other_user = other.user_id

            async def flag(independent: UnitOfWork) -> None:
                await raise_flag(independent, "duplicate_identity", f"identity:{id_hash}",
                                 user_id=user_id, details={"other_user_id": other_user})

            uow.record_independently(flag)
            raise IdentityAlreadyUsed("this document is registered to another account")
        now = uow.clock.now()
        await uow.conn.execute(identities.insert().values(
            user_id=user_id, full_name_enc=self.protector.seal(name, context="name"),
            name_masked=mask_name(name), id_type=id_type,
            id_number_enc=self.protector.seal(number, context="id_number"), id_hash=id_hash,
            id_masked=mask_id_number(number), country=country,
            birth_date=birth_date, status="pending", attempts=0,
            next_check_at=now, submitted_at=now))
        await uow.conn.execute(update(users).where(users.c.id == user_id)
                               .values(kyc_status="pending"))
        await analytics.track(uow, "kyc_submitted", user_id=user_id, props={"id_type": id_type})
        return await self.state(uow, user_id)

    async def process_pending(self, uow_factory: UnitOfWorkFactory, limit: int = 100) -> int:
        """Ask the provider about due pending submissions; return how many were decided.

        Each submission is read, checked (outside any transaction: the provider is remote) and
        written back in its own transaction, so one slow answer holds no lock."""
        i = identities.c
        async with uow_factory(read_only=True) as uow:
            due = (await uow.conn.execute(
                select(i.id).where(i.status == "pending", i.next_check_at <= uow.clock.now())
                .order_by(i.next_check_at).limit(limit))).scalars().all()
        decided = 0
        for identity_id in due:
            async with uow_factory(read_only=True) as uow:
                row = (await uow.conn.execute(
                    select(identities).where(i.id == identity_id))).one()
            if row.status != "pending":
                continue
            name = self.protector.open_text(row.full_name_enc, context="name")
            number = self.protector.open_text(row.id_number_enc, context="id_number")
            outcome = await self.provider.verify(name, row.id_type, number)
            async with uow_factory() as uow:
                decided += await self._record(uow, row, outcome)
                await uow.commit()
        return decided

    async def _record(self, uow: UnitOfWork, row: Any, outcome: IdentityOutcome) -> int:
        i = identities.c
        now = uow.clock.now()
        current = (await uow.conn.execute(select(i.status).where(i.id == row.id))).scalar_one()
        if current != "pending":
            return 0
        if outcome is IdentityOutcome.UNAVAILABLE:
            delays = self.settings.retry_after_seconds
            delay = delays[min(row.attempts, len(delays) - 1)]
            await uow.conn.execute(update(identities).where(i.id == row.id).values(
                attempts=row.attempts + 1, next_check_at=now + timedelta(seconds=delay)))
            return 0
        verified = outcome is IdentityOutcome.MATCH
        status = "verified" if verified else "rejected"
        await uow.conn.execute(update(identities).where(i.id == row.id).values(
            status=status, reason=None if verified else "name_id_mismatch", decided_at=now,
            attempts=row.attempts + 1, next_check_at=None))
        await uow.conn.execute(update(users).where(users.c.id == row.user_id)
                               .values(kyc_status=status))
        await analytics.track(uow, "kyc_verified" if verified else "kyc_rejected",
                              user_id=row.user_id)
        if verified:
            for hook in self.on_verified:
                await hook(uow, row.user_id, row.id_hash)
        await notify.enqueue(uow, row.user_id, "kyc_result",
                             {"status": status, "reason": None if verified else "name_id_mismatch"},
                             dedupe_key=f"kyc_result:{row.id}")
        return 1

    async def state(self, uow: UnitOfWork, user_id: int) -> KycState:
        i = identities.c
        row = (await uow.conn.execute(
            select(i.status, i.reason, i.name_masked, i.id_masked, i.birth_date, i.id_type)
            .where(i.user_id == user_id).order_by(i.submitted_at.desc(), i.id.desc())
            .limit(1))).first()
        if row is None:
            return KycState("unverified", None, None, None, None)
        return KycState(row.status, row.reason, row.name_masked, row.id_masked, row.birth_date)

    async def verified_person(self, uow: UnitOfWork, user_id: int) -> VerifiedPerson:
        i = identities.c
        row = (await uow.conn.execute(select(identities).where(
            i.user_id == user_id, i.status == "verified"))).first()
        if row is None:
            raise KycRequired("complete real-name verification first")
        return VerifiedPerson(
            user_id, self.protector.open_text(row.full_name_enc, context="name"), row.id_type,
            self.protector.open_text(row.id_number_enc, context="id_number"), row.birth_date)

    async def add_document(self, uow: UnitOfWork, user_id: int, kind: str, content_type: str,
                           data: bytes) -> int:
        """Store an extra proof (ID photo, income or employment proof), encrypted."""
        if kind not in DOCUMENT_KINDS:
            raise InvalidDocument(f"unknown document kind {kind}", kind=kind)
        if len(data) > self.settings.document_max_bytes:
            raise DocumentTooLarge("file too large", size=len(data),
                                   limit=self.settings.document_max_bytes)
        if content_type not in self.settings.document_types or content_type not in MAGIC:
            raise UnsupportedDocumentType(f"{content_type} is not accepted",
                                          content_type=content_type)
        if not data.startswith(MAGIC[content_type]):
            raise UnsupportedDocumentType("the file is not what its type says",
                                          content_type=content_type)
        result = await uow.conn.execute(documents.insert().values(
            user_id=user_id, kind=kind, content_type=content_type, size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            data_enc=self.protector.seal(data, context="document"),
            uploaded_at=uow.clock.now()))
        return int(result.inserted_primary_key[0])

    async def read_document(self, uow: UnitOfWork, document_id: int) -> tuple[str, bytes]:
        row = (await uow.conn.execute(
            select(documents.c.content_type, documents.c.data_enc)
            .where(documents.c.id == document_id))).one()
        return row.content_type, self.protector.open(row.data_enc, context="document")
