"""The composition root: builds the engine, units of work, clock and services from settings.

Nothing here runs at import. Tests call ``bootstrap`` with their own settings and clock.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import ConfigError, Settings, decode_data_key
from core.adapters import migrate as migrations
from core.adapters.batching import Coalescer, GroupCommitter
from core.adapters.db import create_engine
from core.adapters.uow import UnitOfWorkFactory
from core.domain.clock import Clock, SystemClock
from core.domain.identity import BankBins
from core.domain.money import Currency
from core.domain.risk_profile import Questionnaire
from core.domain.scorecard import CreditPolicy
from core.ledger import Ledger
from core.live import LocalBus, make_bus
from core.privacy import DataProtector
from core.providers.bank import SandboxBank
from core.providers.identity import SandboxIdentityProvider
from core.providers.sms import SandboxSms
from core.services.broadcasts import Broadcasts
from core.services.cards import Cards
from core.services.kyc import Kyc
from core.services.lending.agreements import Agreements
from core.services.lending.applications import Applications
from core.services.lending.autoinvest import AutoInvest
from core.services.lending.funding import Funding
from core.services.lending.investing import Investing
from core.services.lending.listings import Listings
from core.services.lending.portfolio import Portfolio
from core.services.lending.promotions import Promotions
from core.services.notifications import Notifications
from core.services.registration import Registration
from core.services.risk import RiskProfiles
from core.services.servicing.collections import Collections
from core.services.servicing.daily import DailyJob
from core.services.servicing.repayments import Repayments
from core.services.servicing.views import Views
from core.services.servicing.writeoff import WriteOffs
from core.services.wallet import Wallet

log = logging.getLogger(__name__)


@dataclass
class Core:
    """Everything the adapters (bots, console, dashboards, CLI) need from the domain."""

    settings: Settings
    engine: AsyncEngine
    clock: Clock
    currency: Currency
    uow: UnitOfWorkFactory
    batcher: GroupCommitter
    ledger: Ledger
    protector: DataProtector
    sms: SandboxSms
    identity_provider: SandboxIdentityProvider
    bank: SandboxBank
    bins: BankBins
    registration: Registration
    kyc: Kyc
    cards: Cards
    risk: RiskProfiles
    wallet: Wallet
    policy: CreditPolicy
    listings: Listings
    applications: Applications
    investing: Investing
    funding: Funding
    auto_invest: AutoInvest
    promotions: Promotions
    agreements: Agreements
    bid_desk: Coalescer[Any, Any]
    repayments: Repayments
    collections: Collections
    write_offs: WriteOffs
    daily: DailyJob
    views: Views
    live: LocalBus
    notifications: Notifications
    broadcasts: Broadcasts

    async def close(self) -> None:
        await self.live.close()
        await self.bid_desk.close()
        await self.bank.close()
        await self.batcher.close()
        await self.uow.dispose()
        await self.engine.dispose()

    async def deliver_bank_callback(self, payload: dict[str, Any], signature: str) -> str:
        """How a custody-bank callback enters the platform (HTTP route or sandbox)."""
        async with self.uow() as uow:
            outcome = await self.wallet.handle_callback(uow, payload, signature)
            await uow.commit()
        return outcome


def currency_of(settings: Settings) -> Currency:
    return Currency(settings.money.currency, settings.money.scale, settings.rounding_mode)


async def bootstrap(settings: Settings, *, clock: Clock | None = None,
                    migrate: bool | None = None) -> Core:
    """Build the core. ``migrate=None`` migrates the embedded SQLite by itself and only checks
    PostgreSQL (where several servers share one schema and an operator runs ``migrate``)."""
    engine = create_engine(
        settings.db_url, pool_size=settings.database.pool_size,
        busy_timeout_ms=settings.database.sqlite_busy_timeout_ms, echo=settings.database.echo,
    )
    try:
        if migrate is None:
            migrate = settings.is_sqlite
        if migrate:
            await migrations.upgrade(engine)
        else:
            pending = await migrations.pending_revisions(engine)
            if pending:
                raise ConfigError(
                    f"P2P_DATABASE_URL: schema is behind by {len(pending)} migration(s); "
                    "run `python run.py migrate`"
                )
    except BaseException:
        await engine.dispose()
        raise
    clock = clock or SystemClock(settings.tz)
    currency = currency_of(settings)
    uow = UnitOfWorkFactory(engine, clock)
    if settings.secret_key is None or settings.data_key is None:
        raise ConfigError("P2P_SECRET_KEY, P2P_DATA_KEY: call config.secrets.ensure_secrets first")
    protector = DataProtector(decode_data_key(settings.data_key.get_secret_value()))
    callback_secret = hmac.new(settings.secret_key.get_secret_value().encode(),
                               b"custody-bank-callback", hashlib.sha256).digest()
    sandbox = settings.sandbox
    ledger = Ledger(currency, chunk=settings.batching.post_many_chunk)
    sms = SandboxSms(clock, failure_rate=sandbox.sms_failure_rate)
    identity_provider = SandboxIdentityProvider(outcome=sandbox.identity_outcome,
                                                delay=sandbox.identity_delay_seconds)
    bank = SandboxBank(uow, sms, callback_secret, delay=sandbox.bank_delay_seconds,
                       failure_rate=sandbox.bank_failure_rate,
                       duplicate_rate=sandbox.bank_duplicate_rate,
                       auto_settle=sandbox.bank_auto_settle)
    bins = BankBins.load()
    registration = Registration(settings.registration, protector, sms, ledger)
    kyc = Kyc(settings.kyc, protector, identity_provider)
    cards = Cards(protector, bins, bank, kyc, registration,
                  shared_card_accounts=settings.wallet.aml_shared_card_accounts)
    questionnaire = Questionnaire.load()
    lending = settings.lending
    policy = CreditPolicy.load(lending.credit_policy_file)
    listings = Listings(lending, currency, protector)
    investing = Investing(lending, currency, ledger, questionnaire)
    funding = Funding(lending, currency, ledger)
    promotions = Promotions(settings.promotions, currency, ledger)
    auto_invest = AutoInvest(lending, currency, ledger, investing, questionnaire)
    applications = Applications(lending, currency, policy, kyc, cards, listings, protector,
                                settings.kyc.borrower_maximum_age)
    repayments = Repayments(settings.servicing, lending, currency, ledger)
    collections = Collections(settings.servicing, currency)
    core = Core(
        settings=settings, engine=engine, clock=clock, currency=currency, uow=uow,
        batcher=GroupCommitter(uow, max_batch=settings.batching.max_batch,
                               max_delay=settings.batching.max_delay_ms / 1000),
        ledger=ledger, protector=protector, sms=sms, identity_provider=identity_provider,
        bank=bank, bins=bins, registration=registration, kyc=kyc, cards=cards,
        risk=RiskProfiles(questionnaire),
        wallet=Wallet(settings.wallet, currency, ledger, bank, cards, kyc, callback_secret),
        policy=policy, listings=listings, applications=applications, investing=investing,
        funding=funding, auto_invest=auto_invest, promotions=promotions,
        agreements=Agreements(lending, protector),
        bid_desk=Coalescer(uow, investing.invest_many, max_batch=settings.batching.max_batch,
                           max_delay=settings.batching.max_delay_ms / 1000),
        repayments=repayments, collections=collections,
        write_offs=WriteOffs(currency, ledger),
        daily=DailyJob(settings.servicing, uow, ledger, repayments, collections, funding,
                       auto_invest, lending),
        views=Views(currency, repayments),
        live=make_bus(settings.redis_url),
        notifications=Notifications(settings),
        broadcasts=Broadcasts(settings),
    )
    bank.deliver = core.deliver_bank_callback
    core.wallet.claims_reader = Portfolio(currency).claims
    investing.on_funded.append(funding.on_funded)
    funding.on_disbursed.append(promotions.pay_referral_rewards)
    listings.on_listed.append(lambda work, loan_id: auto_invest.match(work, [loan_id]))
    kyc.on_verified.append(promotions.grant_signup_red_packet)
    async with uow() as work:
        await core.ledger.ensure_platform_accounts(work)
        await work.commit()
    return core
