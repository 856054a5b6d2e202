"""Users and channels: first touch, phone verification codes, registration, channel linking.

A person may reach us through several channels; each (channel, external id) is a channel identity,
created at first contact with its attribution (campaign, referrer) and linked to a ``User`` when
the person registers with a verified phone number. Registering the same phone from another
channel links that channel to the existing user instead of creating a second account.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, update

from config.settings import RegistrationSettings
from core import analytics
from core.adapters.tables import channel_identities, consents, users, verification_codes
from core.adapters.uow import UnitOfWork
from core.domain.errors import (
    ConsentRequired,
    DailyCodeLimit,
    InvalidVerificationCode,
    NotRegistered,
    ResendTooSoon,
    TooManyAttempts,
    UnknownReferralCode,
    VerificationCodeExpired,
)
from core.domain.identity import mask_phone, parse_phone
from core.ledger import Ledger
from core.privacy import DataProtector
from core.providers.sms import SmsProvider

log = logging.getLogger(__name__)
ROLES = frozenset({"investor", "borrower"})
REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
DOCUMENTS = ("user_agreement", "risk_disclosure")


@dataclass(frozen=True, slots=True)
class ChannelIdentity:
    id: int
    channel: str
    external_id: str
    user_id: int | None
    locale: str | None
    campaign: str | None
    referrer: str | None
    created: bool


@dataclass(frozen=True, slots=True)
class Registered:
    user_id: int
    created: bool  # False: an existing user, now linked to this channel too
    referral_code: str


class Registration:
    def __init__(self, settings: RegistrationSettings, protector: DataProtector,
                 sms: SmsProvider, ledger: Ledger) -> None:
        self.settings = settings
        self.protector = protector
        self.sms = sms
        self.ledger = ledger

    # First touch ----------------------------------------------------------------------------

    async def touch(self, uow: UnitOfWork, channel: str, external_id: str, *,
                    display_name: str | None = None, locale: str | None = None,
                    campaign: str | None = None, referrer: str | None = None) -> ChannelIdentity:
        """Record a contact from a channel; the first one keeps its attribution for good."""
        c = channel_identities.c
        now = uow.clock.now()
        row = (await uow.conn.execute(select(channel_identities).where(
            c.channel == channel, c.external_id == external_id))).first()
        if row is not None:
            await uow.conn.execute(update(channel_identities).where(c.id == row.id)
                                   .values(last_seen_at=now))
            return ChannelIdentity(row.id, channel, external_id, row.user_id, row.locale,
                                   row.campaign, row.referrer, created=False)
        result = await uow.conn.execute(channel_identities.insert().values(
            channel=channel, external_id=external_id, display_name=display_name, locale=locale,
            campaign=campaign, referrer=referrer, first_seen_at=now, last_seen_at=now))
        identity_id = int(result.inserted_primary_key[0])
        await analytics.track(uow, "first_visit", channel=channel, campaign=campaign,
                              props={"referrer": referrer} if referrer else None)
        return ChannelIdentity(identity_id, channel, external_id, None, locale, campaign,
                               referrer, created=True)

    async def touch_many(self, uow: UnitOfWork, contacts: list[dict[str, Any]]
                         ) -> dict[tuple[str, str], ChannelIdentity]:
        """``touch`` for a batch of chats (keys as in ``touch`` plus ``channel`` and
        ``external_id``) in a fixed number of statements: one read per channel, one update for
        the known chats, one insert (and one analytics insert) for the new ones."""
        c = channel_identities.c
        now = uow.clock.now()
        found: dict[tuple[str, str], ChannelIdentity] = {}
        by_channel: dict[str, list[str]] = {}
        for contact in contacts:
            by_channel.setdefault(contact["channel"], []).append(contact["external_id"])
        for channel, ids in by_channel.items():
            for row in await uow.conn.execute(select(channel_identities).where(
                    c.channel == channel, c.external_id.in_(ids))):
                found[(channel, row.external_id)] = ChannelIdentity(
                    row.id, channel, row.external_id, row.user_id, row.locale, row.campaign,
                    row.referrer, created=False)
        if found:  # one statement: every chat of the batch was seen now
            await uow.conn.execute(update(channel_identities).where(
                c.id.in_([identity.id for identity in found.values()]))
                .values(last_seen_at=now, unreachable=False))  # they write: reachable
        new = list({(k["channel"], k["external_id"]): k for k in contacts
                    if (k["channel"], k["external_id"]) not in found}.values())
        if not new:
            return found
        rows = [{"channel": k["channel"], "external_id": k["external_id"],
                 "display_name": k.get("display_name"), "locale": k.get("locale"),
                 "campaign": k.get("campaign"), "referrer": k.get("referrer"),
                 "first_seen_at": now, "last_seen_at": now} for k in new]
        result = await uow.conn.execute(
            channel_identities.insert().returning(c.id, sort_by_parameter_order=True), rows)
        for row, (identity_id,) in zip(rows, result.all(), strict=True):
            found[(row["channel"], row["external_id"])] = ChannelIdentity(
                identity_id, row["channel"], row["external_id"], None, row["locale"],
                row["campaign"], row["referrer"], created=True)
        await analytics.track_many(uow, [
            {"name": "first_visit", "channel": row["channel"], "campaign": row["campaign"],
             "props": {"referrer": row["referrer"]} if row["referrer"] else None, "at": now}
            for row in rows])
        return found

    # Verification codes ---------------------------------------------------------------------

    def normalize_phone(self, text: str) -> str:
        return parse_phone(text, self.settings.phone_region)

    async def request_code(self, uow: UnitOfWork, phone_text: str,
                           purpose: str = "register") -> str:
        """Send a verification code; return the phone masked (what the user is shown)."""
        phone = self.normalize_phone(phone_text)
        phone_hash = self.protector.lookup_hash(phone, kind="phone")
        now = uow.clock.now()
        v = verification_codes.c
        day_start = datetime.combine(uow.clock.today(), time(), uow.clock.tz)
        sent_today, last_sent = (await uow.conn.execute(
            select(func.count(), func.max(v.created_at))
            .where(v.phone_hash == phone_hash, v.created_at >= day_start))).one()
        if last_sent is not None:
            wait = self.settings.code_resend_seconds - (now - last_sent).total_seconds()
            if wait > 0:
                raise ResendTooSoon(f"wait {math.ceil(wait)}s", seconds=math.ceil(wait))
        daily = self.settings.codes_per_phone_per_day
        if sent_today >= daily:
            raise DailyCodeLimit("too many codes today", limit=daily)
        code = f"{secrets.randbelow(10 ** self.settings.code_length):0{self.settings.code_length}d}"
        await uow.conn.execute(verification_codes.insert().values(
            phone_hash=phone_hash, purpose=purpose, code_hash=self._code_hash(phone_hash, code),
            created_at=now, expires_at=now + timedelta(seconds=self.settings.code_ttl_seconds)))
        minutes = max(1, self.settings.code_ttl_seconds // 60)
        text = f"[P2P Desk] 验证码 {code}，{minutes}分钟内有效。Your code is {code}."

        async def send() -> None:
            await self.sms.send(phone, text)
            log.info("verification code sent to %s", mask_phone(phone))

        uow.after_commit.append(send)
        return mask_phone(phone)

    def _code_hash(self, phone_hash: str, code: str) -> str:
        return hmac.new(phone_hash.encode(), code.encode(), hashlib.sha256).hexdigest()

    async def verify_code(self, uow: UnitOfWork, phone: str, code: str, purpose: str) -> None:
        """Consume the latest code for ``phone``; a wrong try is counted even if the caller's
        transaction rolls back, so five misses lock the code whatever the caller does."""
        phone_hash = self.protector.lookup_hash(phone, kind="phone")
        v = verification_codes.c
        row = (await uow.conn.execute(
            select(verification_codes)
            .where(v.phone_hash == phone_hash, v.purpose == purpose, v.consumed_at.is_(None))
            .order_by(v.created_at.desc(), v.id.desc()).limit(1))).first()
        if row is None:
            raise InvalidVerificationCode("no code was sent to this phone")
        limit = self.settings.code_max_attempts
        if uow.clock.now() >= row.expires_at:
            raise VerificationCodeExpired("the code has expired; ask for a new one")
        code_id = row.id

        async def count_try(work: UnitOfWork) -> int | None:
            """Every try counts, before the code is compared, so parallel guesses cannot all
            see the same count (this is what stops brute force)."""
            result = await work.conn.execute(
                update(verification_codes).where(v.id == code_id, v.attempts < limit)
                .values(attempts=v.attempts + 1).returning(v.attempts))
            value = result.scalar_one_or_none()
            return None if value is None else int(value)

        async def at_least(work: UnitOfWork, tries: int | None) -> None:
            if tries is not None:
                await work.conn.execute(update(verification_codes).where(
                    v.id == code_id, v.attempts < tries).values(attempts=tries))

        tries = await uow.autonomous(count_try, at_least)
        if tries is None:
            raise TooManyAttempts("too many wrong codes; ask for a new one", limit=limit)
        typed = "".join(ch for ch in code if not ch.isspace())
        if not hmac.compare_digest(self._code_hash(phone_hash, typed), row.code_hash):
            if tries >= limit:
                raise TooManyAttempts("too many wrong codes; ask for a new one", limit=limit)
            raise InvalidVerificationCode("wrong code", attempts_left=limit - tries)
        await uow.conn.execute(update(verification_codes).where(v.id == row.id)
                               .values(consumed_at=uow.clock.now()))

    # Registration ---------------------------------------------------------------------------

    async def register(self, uow: UnitOfWork, identity: ChannelIdentity, *, phone_text: str,
                       code: str, roles: set[str], accepted: Mapping[str, str],
                       referral_code: str | None = None, locale: str | None = None) -> Registered:
        """Verify the code and create the user (or link this channel to the existing one)."""
        phone = self.normalize_phone(phone_text)
        bad_roles = set(roles) - ROLES
        if not roles or bad_roles:
            raise ValueError(f"roles must be a non-empty subset of {sorted(ROLES)}")
        versions = {"user_agreement": self.settings.user_agreement_version,
                    "risk_disclosure": self.settings.risk_disclosure_version}
        for document in DOCUMENTS:
            if accepted.get(document) != versions[document]:
                raise ConsentRequired(f"accept {document} version {versions[document]}",
                                      document=document, version=versions[document])
        referrer_id = None
        if referral_code:
            referrer_id = await self._referrer(uow, referral_code)
        await self.verify_code(uow, phone, code, "register")

        phone_hash = self.protector.lookup_hash(phone, kind="phone")
        u = users.c
        existing = (await uow.conn.execute(
            select(u.id, u.referral_code, u.is_investor, u.is_borrower)
            .where(u.phone_hash == phone_hash))).first()
        now = uow.clock.now()
        if existing is not None:
            await uow.conn.execute(update(users).where(u.id == existing.id).values(
                is_investor=existing.is_investor or "investor" in roles,
                is_borrower=existing.is_borrower or "borrower" in roles))
            await self._link(uow, identity, existing.id)
            return Registered(existing.id, created=False, referral_code=existing.referral_code)

        result = await uow.conn.execute(users.insert().values(
            created_at=now, status="active", phone_enc=self.protector.seal(phone, context="phone"),
            phone_hash=phone_hash, phone_masked=mask_phone(phone),
            is_investor="investor" in roles, is_borrower="borrower" in roles,
            referral_code=await self._new_referral_code(uow), referred_by=referrer_id,
            locale=locale or identity.locale, registered_at=now, first_channel=identity.channel,
            first_campaign=identity.campaign,
            first_referrer=referral_code or identity.referrer, kyc_status="unverified"))
        user_id = int(result.inserted_primary_key[0])
        await self.ledger.open_user_accounts(uow, user_id)
        await uow.conn.execute(consents.insert(), [
            {"user_id": user_id, "document": d, "version": versions[d], "accepted_at": now}
            for d in DOCUMENTS])
        await self._link(uow, identity, user_id)
        await analytics.track(uow, "registered", user_id=user_id, channel=identity.channel,
                              campaign=identity.campaign,
                              props={"roles": sorted(roles), "referred": referrer_id is not None})
        own_code = (await uow.conn.execute(select(u.referral_code).where(u.id == user_id)))
        return Registered(user_id, created=True, referral_code=own_code.scalar_one())

    async def _link(self, uow: UnitOfWork, identity: ChannelIdentity, user_id: int) -> None:
        c = channel_identities.c
        await uow.conn.execute(update(channel_identities).where(c.id == identity.id)
                               .values(user_id=user_id))

    async def _referrer(self, uow: UnitOfWork, code: str) -> int:
        row = (await uow.conn.execute(
            select(users.c.id).where(users.c.referral_code == code.strip().upper()))).first()
        if row is None:
            raise UnknownReferralCode(f"no referral code {code}", code=code)
        return int(row.id)

    async def _new_referral_code(self, uow: UnitOfWork) -> str:
        while True:
            code = "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(8))
            taken = (await uow.conn.execute(
                select(users.c.id).where(users.c.referral_code == code))).first()
            if taken is None:
                return code

    # Reading --------------------------------------------------------------------------------

    async def user_for(self, uow: UnitOfWork, channel: str, external_id: str) -> int | None:
        c = channel_identities.c
        row = (await uow.conn.execute(select(c.user_id).where(
            c.channel == channel, c.external_id == external_id))).first()
        return None if row is None else row.user_id

    async def require_user(self, uow: UnitOfWork, user_id: int) -> None:
        row = (await uow.conn.execute(
            select(users.c.registered_at).where(users.c.id == user_id))).first()
        if row is None or row.registered_at is None:
            raise NotRegistered("register first")

    async def phone_of(self, uow: UnitOfWork, user_id: int) -> str:
        """The user's phone in clear, for sending them an SMS; never log or show it."""
        row = (await uow.conn.execute(
            select(users.c.phone_enc).where(users.c.id == user_id))).one()
        return self.protector.open_text(row.phone_enc, context="phone")
