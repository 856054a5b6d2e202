"""Real-name verification through the services and the sandbox identity provider."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.adapters.tables import identities, outbox, risk_flags
from core.domain.errors import (
    DocumentTooLarge,
    IdentityAlreadyUsed,
    InvalidIdNumber,
    KycAlreadySubmitted,
    OverAge,
    UnderAge,
    UnsupportedDocumentType,
)
from tests.integration.accounts_helpers import register, resident_id, verify


async def submit(core, user_id, name="李四", number=None, **kwargs):
    async with core.uow() as uow:
        try:
            return await core.kyc.submit(uow, user_id, full_name=name, id_type="resident_id",
                                         id_number=number or resident_id(), **kwargs)
        finally:
            await uow.commit()


async def state(core, user_id):
    async with core.uow(read_only=True) as uow:
        return await core.kyc.state(uow, user_id)


async def test_a_matching_identity_is_verified_and_the_user_is_told(core):
    person = await register(core)
    number = resident_id("19850612")
    pending = await submit(core, person.user_id, number=number)
    assert pending.status == "pending"
    assert pending.id_masked == number[:3] + "*" * 11 + number[-4:]
    assert pending.name_masked == "李*"
    assert await core.kyc.process_pending(core.uow) == 1
    done = await state(core, person.user_id)
    assert done.status == "verified"
    async with core.uow(read_only=True) as uow:
        notice = (await uow.conn.execute(select(outbox.c.template, outbox.c.params).where(
            outbox.c.template == "kyc_result"))).one()
        stored = (await uow.conn.execute(select(identities.c.id_number_enc))).scalar_one()
    assert notice.template == "kyc_result" and notice.params["status"] == "verified"
    assert number.encode() not in stored


async def test_a_mismatch_is_rejected_with_a_reason_and_may_be_corrected(core):
    person = await register(core)
    await submit(core, person.user_id, name="不符测试")
    await core.kyc.process_pending(core.uow)
    rejected = await state(core, person.user_id)
    assert (rejected.status, rejected.reason) == ("rejected", "name_id_mismatch")
    await submit(core, person.user_id, name="王五")
    await core.kyc.process_pending(core.uow)
    assert (await state(core, person.user_id)).status == "verified"


async def test_an_unavailable_provider_keeps_the_submission_pending_and_asks_again_later(core):
    person = await register(core)
    core.identity_provider.unavailable_next = 2
    await submit(core, person.user_id)
    assert await core.kyc.process_pending(core.uow) == 0
    assert (await state(core, person.user_id)).status == "pending"
    assert await core.kyc.process_pending(core.uow) == 0  # not due yet: nothing asked
    assert len(core.identity_provider.calls) == 1
    core.clock.advance(timedelta(seconds=61))
    await core.kyc.process_pending(core.uow)
    core.clock.advance(timedelta(seconds=301))
    assert await core.kyc.process_pending(core.uow) == 1
    assert (await state(core, person.user_id)).status == "verified"
    assert len(core.identity_provider.calls) == 3


async def test_submitting_again_while_pending_is_refused(core):
    person = await register(core)
    await submit(core, person.user_id)
    with pytest.raises(KycAlreadySubmitted):
        await submit(core, person.user_id)


async def test_one_identity_document_belongs_to_one_account_and_a_second_is_flagged(core):
    first, second = await register(core), await register(core)
    number = resident_id()
    await verify(core, first, id_number=number)
    with pytest.raises(IdentityAlreadyUsed):
        await submit(core, second.user_id, number=number)
    assert (await state(core, second.user_id)).status == "unverified"
    async with core.uow(read_only=True) as uow:
        flags = (await uow.conn.execute(select(risk_flags.c.kind, risk_flags.c.user_id))).all()
    assert flags == [("duplicate_identity", second.user_id)]


@pytest.mark.parametrize(("number", "reason"), [
    ("11010519900307101", "id_format"),
    ("110105199003071019", "id_checksum"),
    ("110105199002301012", "id_birth_date"),
    ("990105199003071014", "id_region"),
])
async def test_malformed_id_numbers_get_their_reason_and_store_nothing(core, number, reason):
    person = await register(core)
    if reason == "id_checksum":  # make sure the last character really is wrong
        right = resident_id("19900307", seq=number[14:17])
        number = number[:17] + ("1" if right[-1] != "1" else "2")
    with pytest.raises(InvalidIdNumber) as refused:
        await submit(core, person.user_id, number=number)
    assert refused.value.params["reason"] == reason
    async with core.uow(read_only=True) as uow:
        assert (await uow.conn.execute(select(func.count()).select_from(identities))
                ).scalar_one() == 0


async def test_the_under_aged_are_refused(core):
    person = await register(core)
    seventeen = (core.clock.today() - timedelta(days=17 * 366)).strftime("%Y%m%d")
    with pytest.raises(UnderAge):
        await submit(core, person.user_id, number=resident_id(seventeen))


async def test_borrowers_above_the_maximum_age_are_refused(core):
    person = await register(core, roles={"borrower"})
    with pytest.raises(OverAge):
        await submit(core, person.user_id, number=resident_id("19500101"))


async def test_proof_documents_are_checked_and_stored_encrypted(core):
    person = await register(core)
    jpeg = b"\xff\xd8\xff\xe0" + b"x" * 1000
    async with core.uow() as uow:
        doc_id = await core.kyc.add_document(uow, person.user_id, "income_proof", "image/jpeg",
                                             jpeg)
        with pytest.raises(UnsupportedDocumentType):
            await core.kyc.add_document(uow, person.user_id, "id_front", "image/png", jpeg)
        with pytest.raises(UnsupportedDocumentType):
            await core.kyc.add_document(uow, person.user_id, "id_front", "text/html", b"<html>")
        with pytest.raises(DocumentTooLarge):
            await core.kyc.add_document(uow, person.user_id, "id_front", "application/pdf",
                                        b"%PDF-" + b"0" * (5 * 1024 * 1024))
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        assert await core.kyc.read_document(uow, doc_id) == ("image/jpeg", jpeg)
