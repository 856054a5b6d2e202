"""The day-by-day simulation behind ``run.py seed`` and the first start's demo data.

Everything happens through the core services, with the injected ``ManualClock`` moved to the
moment each thing happens: visitors touch the platform, register with the SMS code the sandbox
gateway delivered, pass KYC at the sandbox identity provider, bind a card with the custody
bank's code, answer the risk questionnaire, top up (the sandbox bank settles and calls back),
invest by hand or by auto-invest rules; borrowers apply, are scored, reviewed and funded,
withdraw the loan and repay (early, late, or not at all, by grade); the daily job runs every
morning (auto-debit, overdue, collections, promises, expiries); staff review applications,
disburse loans that need it and write off what the D+90 review opens; a support desk answers
the conversations a ``ChatPort`` carries to the dialog engine.

Speed: each day's actions are grouped by step and run in one unit of work per step, each
action in a savepoint of its own (an action the services refuse changes nothing and the person
stops there, as a real person would). The same seed gives the same data: one ``random.Random``
drives every choice and actions run in a fixed order.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import time as wallclock
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

from core.bootstrap import Core
from core.domain.clock import ManualClock
from core.domain.errors import DomainError
from core.domain.hours import support_hours
from core.domain.money import Money
from core.ledger import user_account
from core.services.broadcasts import Segment
from core.services.lending.autoinvest import AutoInvestRule
from core.services.lending.investing import BidRequest
from core.services.lending.listings import ListingFilter
from core.services.staff import StaffService
from core.simulator import world as w

log = logging.getLogger(__name__)
ACCEPTED_VERSIONS = ("user_agreement", "risk_disclosure")
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


class ChatPort(Protocol):
    """The chat side of the simulation, supplied by the bots layer (the dialog engine and the
    agent desk); core does not know how conversations are held."""

    def questions(self, locale: str) -> Sequence[str]:
        """Questions the knowledge base answers, as customers type them."""
        ...

    async def say(self, uow: Any, channel: str, chat_id: str, locale: str, *,
                  text: str | None = None, action: str | None = None) -> None:
        """One customer message or button press, answered by the bot (or queued for a human)."""
        ...

    async def waiting(self, uow: Any) -> dict[tuple[str, str], int]:
        """The human queue: (channel, chat id) -> conversation id."""
        ...

    async def agent_answers(self, uow: Any, conversation_id: int, agent_id: int,
                            agent_name: str, text: str, *, resolve: bool) -> None:
        """An agent claims the conversation, writes, and resolves it when ``resolve``."""
        ...

    async def deliver(self) -> int:
        """Send what the platform owes chats (replies, due notices); returns how many."""
        ...


@dataclass
class Person:
    key: int
    source: w.Source
    locale: str
    chat_id: str
    role: str = "investor"
    user_id: int | None = None
    phone: str = ""
    identity: Any = None
    name: str = ""
    id_number: str = ""
    risk_style: int = 2
    invested: bool = False
    grade: str | None = None
    behaviour: str = "good"  # good | late | default
    stopped: bool = False
    data: Any = None  # what the step being run needs (set per action)
    level: str = ""  # the questionnaire's C1..C5
    referral_code: str | None = None  # their own, to invite friends with
    invited_by: str | None = None  # the code in the link they came by


@dataclass
class Report:
    days: int = 0
    visitors: int = 0
    steps: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    events: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        s = self.steps
        return (f"{self.days} days, {self.visitors} visitors, {s['registered']} registered, "
                f"{s['verified']} verified, {s['first_investment']} first investments, "
                f"{s['applied']} loan applications, {s['disbursed']} loans disbursed, "
                f"{s['conversations']} support conversations; {self.events} analytics events "
                f"in {self.seconds:.1f} s ({self.events_per_second:.0f} events/s)")


Action = Callable[[Any, Person], Awaitable[None]]
# The order in which a day's steps run (a later step may act on what an earlier one did).
ORDER = ("visit", "code", "register", "kyc", "card", "card_code", "risk", "top_up", "invest",
         "auto_rule", "apply", "review", "withdraw", "pay", "ask", "human", "agent", "rate",
         "feedback")


class Simulation:
    def __init__(self, core: Core, *, users: int, days: int, seed: int, end: date,
                 chat: ChatPort | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        if not isinstance(core.clock, ManualClock):
            raise TypeError("the simulation moves the clock: bootstrap the core with a "
                            "ManualClock")
        if users < 1 or days < 1:
            raise ValueError("users and days must be at least 1")
        self.core, self.clock, self.chat, self.progress = core, core.clock, chat, progress
        self.users, self.days, self.end = users, days, end
        self.start = end - timedelta(days=days - 1)
        self.random = random.Random(seed)
        self.seed = seed
        self.tz = core.clock.tz
        self.report = Report()
        self.queue: list[tuple[datetime, int, str, Person, Any]] = []
        self.seq = itertools.count()
        self.people: list[Person] = []
        self.staff: dict[str, int] = {}
        self.agents: list[tuple[int, str]] = []
        self.loans: dict[int, Person] = {}  # loan id -> borrower
        self.plans: dict[int, list[tuple[date, Decimal, str]]] = {}
        self.handovers: dict[tuple[str, str], Person] = {}
        self.used_ids: set[str] = set()
        self.written_off: set[int] = set()
        self.agent_due: set[str] = set()  # chats an agent will take
        self.referrers: list[str] = []  # referral codes of investors who invested
        self.actions: dict[str, Action] = {
            "visit": self._visit, "code": self._code, "register": self._register,
            "kyc": self._kyc, "card": self._card, "card_code": self._card_code,
            "risk": self._risk, "top_up": self._top_up, "invest": self._invest,
            "auto_rule": self._auto_rule, "apply": self._apply, "review": self._review,
            "withdraw": self._withdraw, "pay": self._pay, "ask": self._ask,
            "human": self._human, "agent": self._agent, "rate": self._rate,
            "feedback": self._feedback,
        }
        self.pending_codes: dict[int, Any] = {}  # person key -> card binding awaiting its code
        self.orders: list[str] = []  # bank orders opened today (settled after the step)
        self.listings: list[Any] | None = None

    # The calendar -------------------------------------------------------------------------

    async def run(self) -> Report:
        began = wallclock.perf_counter()
        events_before = await self._event_count()
        await self._set_up()
        per_day = self._visitors_per_day()
        for n, day in enumerate(self.start + timedelta(days=k) for k in range(self.days)):
            await self._morning(day)
            for _ in range(per_day[n]):
                self._new_visitor(day)
            self._support_contacts(day)
            await self._run_day(day)
            if self.chat is not None:
                await self.chat.deliver()
            self.core.sms.messages.clear()  # the codes of the day were typed or forgotten
            self.report.days += 1
            if self.progress is not None:
                self.progress(1)
        self.report.events = await self._event_count() - events_before
        self.report.seconds = wallclock.perf_counter() - began
        return self.report

    def _visitors_per_day(self) -> list[int]:
        register = sum(s.share * min(1.0, w.REGISTER * s.quality) for s in w.SOURCES)
        visitors = self.users / register
        weights = [w.WEEKDAY[(self.start + timedelta(days=n)).weekday()]
                   * (1 + w.GROWTH_PER_DAY * n) for n in range(self.days)]
        total = sum(weights)
        counts, carry = [], 0.0
        for weight in weights:  # largest-remainder rounding keeps the total
            exact = visitors * weight / total + carry
            counts.append(int(exact))
            carry = exact - int(exact)
        return counts

    def _at(self, day: date, hour: int | None = None) -> datetime:
        if hour is None:
            hour = self.random.choices([h for h, _ in w.HOURS], [x for _, x in w.HOURS])[0]
        return datetime.combine(day, time(hour, self.random.randrange(60),
                                          self.random.randrange(60)), self.tz)

    def schedule(self, when: datetime, step: str, person: Person, data: Any = None) -> None:
        heapq.heappush(self.queue, (when, next(self.seq), step, person, data))

    def later(self, after: datetime, step: str, person: Person, data: Any = None,
              minutes: tuple[int, int] = (1, 20)) -> None:
        """The person's next step: usually minutes later, sometimes days later."""
        days = self.random.choice(w.STEP_DELAY_DAYS)
        if days == 0:
            when = after + timedelta(minutes=self.random.randint(*minutes))
            if when.date() != after.date():
                when = self._at(after.date() + timedelta(days=1))
        else:
            when = self._at(after.date() + timedelta(days=days))
        self.schedule(when, step, person, data)

    def chance(self, p: float) -> bool:
        return self.random.random() < p

    async def _run_day(self, day: date) -> None:
        """Run every action due on ``day``, step by step in ``ORDER``; an action may schedule
        later ones on the same day, so this repeats until the day is empty."""
        horizon = datetime.combine(day + timedelta(days=1), time(0), self.tz)
        while self.queue and self.queue[0][0] < horizon:
            due: dict[str, list[tuple[datetime, Person, Any]]] = {}
            while self.queue and self.queue[0][0] < horizon:
                when, _, step, person, data = heapq.heappop(self.queue)
                due.setdefault(step, []).append((when, person, data))
            for step in ORDER:
                if step in due:
                    await self._step(step, due[step])

    async def _step(self, step: str, items: list[tuple[datetime, Person, Any]]) -> None:
        action = self.actions[step]
        self.orders = []
        async with self.core.uow() as uow:
            for when, person, data in items:
                if person.stopped and step not in ("pay", "rate", "agent", "withdraw"):
                    continue
                self.clock.set(when)
                person.data = data
                try:
                    async with uow.savepoint():
                        await action(uow, person)
                except (DomainError, ValueError, LookupError) as exc:
                    self.report.refused[f"{step}:{type(exc).__name__}"] += 1
                    person.stopped = step not in ("invest", "pay", "withdraw", "review")
            await uow.commit()
        if step == "kyc":  # the identity provider answers
            await self.core.kyc.process_pending(self.core.uow, limit=len(items))
        for ref in self.orders:  # the bank settles and calls back, as it would minutes later
            await self.core.bank.settle(ref, succeeded=True)

    # Set-up and mornings ------------------------------------------------------------------

    async def _set_up(self) -> None:
        self.clock.set(datetime.combine(self.start, time(1), self.tz))
        service = StaffService(self.core.settings.support)
        from core.services.platform_funds import deposit

        async with self.core.uow() as uow:
            for name, display, role in (("risk.officer", "风控专员", "manager"),
                                        ("collections.lead", "催收主管", "manager"),
                                        *((n, d, "agent") for n, d in w.AGENTS)):
                existing = await service.get(uow, name)
                if existing is None:
                    existing = await service.add(uow, name, f"sim-{self.random.random()}",
                                                 role, display)
                self.staff[name] = existing.id
                if role == "agent":
                    self.agents.append((existing.id, display))
            await deposit(uow, self.core.ledger, "promotion_budget", self.money(50_000),
                          f"sim:{self.seed}:{self.start}:promotion_budget")
            await uow.commit()

    async def _morning(self, day: date) -> None:
        """02:00: the daily job; then staff work the tasks it opened."""
        self.clock.set(datetime.combine(day, time(2), self.tz))
        await self.core.daily.run(day)
        self.listings = None
        self.clock.set(datetime.combine(day, time(10), self.tz))
        async with self.core.uow() as uow:
            for task in await self.core.collections.open_tasks(uow, "write_off_review"):
                loan_id = task["loan_id"]
                if loan_id in self.written_off:
                    continue
                self.written_off.add(loan_id)
                try:
                    async with uow.savepoint():
                        await self.core.write_offs.write_off(
                            uow, loan_id, self.staff["collections.lead"])
                    self.report.steps["written_off"] += 1
                except DomainError as exc:
                    self.report.refused[f"write_off:{type(exc).__name__}"] += 1
            await uow.commit()
        await self._call_late_borrowers()
        if (day - self.start).days % 30 == 15:
            await self._broadcast(day)
        if day.day in (1, 15):
            async with self.core.uow() as uow:
                await self.core.broadcasts.attribute_conversions(uow)
                await uow.commit()

    async def _call_late_borrowers(self) -> None:
        """The collections team works the D+3 tasks: who pays late answers, who defaults
        mostly does not."""
        lead = self.staff["collections.lead"]
        async with self.core.uow() as uow:
            for task in await self.core.collections.open_tasks(uow, "collections"):
                borrower = self.loans.get(task["loan_id"])
                if borrower is not None and borrower.behaviour == "default":
                    outcome = self.random.choices(
                        ("unreachable", "refused", "contacted", "wrong_contact"), (5, 2, 2, 1))[0]
                else:
                    outcome = self.random.choices(("contacted", "unreachable"), (8, 2))[0]
                await self.core.collections.log_outcome(uow, task["id"], lead, outcome)
                self.report.steps["collection_calls"] += 1
            await uow.commit()

    async def _broadcast(self, day: date) -> None:
        self.clock.set(datetime.combine(day, time(11), self.tz))
        async with self.core.uow() as uow:
            broadcast_id = await self.core.broadcasts.create(
                uow, name=f"新标推荐 {day:%m-%d}", segment=Segment(
                    role="investor", min_idle_balance=Decimal("1000")),
                text_zh="本周新上线多个优质借款项目，闲置资金可以出借了。",
                text_en="New loans are listed this week: put your idle balance to work.",
                buttons=["flow:browse"], staff_id=self.staff["collections.lead"])
            await self.core.broadcasts.start(uow, broadcast_id)
            await uow.commit()
        await self.core.broadcasts.resume(self.core.uow, broadcast_id)
        self.report.steps["broadcasts"] += 1

    # Acquisition and onboarding -----------------------------------------------------------

    def _new_visitor(self, day: date) -> None:
        source = self.random.choices(w.SOURCES, [s.share for s in w.SOURCES])[0]
        key = len(self.people) + 1
        person = Person(key, source, "en" if self.chance(source.locale_en) else "zh-CN",
                        f"sim{self.seed}-{key}")
        self.people.append(person)
        self.report.visitors += 1
        self.schedule(self._at(day), "visit", person)

    async def _visit(self, uow: Any, p: Person) -> None:
        if p.source.campaign == "referral" and self.referrers:
            p.invited_by = self.random.choice(self.referrers)
        p.identity = await self.core.registration.touch(
            uow, p.source.channel, p.chat_id, locale=p.locale, campaign=p.source.campaign,
            referrer=p.invited_by)
        if self.chance(min(1.0, w.REGISTER * p.source.quality)):
            p.role = "borrower" if self.chance(w.BORROWER_SHARE) else "investor"
            self.later(self.clock.now(), "code", p, minutes=(1, 5))

    async def _code(self, uow: Any, p: Person) -> None:
        p.phone = f"{self.random.choice(w.PHONE_PREFIXES)}" \
                  f"{(self.seed * 7919 + p.key * 104729) % 100_000_000:08d}"
        await self.core.registration.request_code(uow, p.phone)
        self.schedule(self.clock.now() + timedelta(minutes=1), "register", p)

    async def _register(self, uow: Any, p: Person) -> None:
        code = self.core.sms.last_code(self.core.registration.normalize_phone(p.phone))
        settings = self.core.settings.registration
        accepted = {"user_agreement": settings.user_agreement_version,
                    "risk_disclosure": settings.risk_disclosure_version}
        done = await self.core.registration.register(
            uow, p.identity, phone_text=p.phone, code=code or "", roles={p.role},
            accepted=accepted, locale=p.locale, referral_code=p.invited_by)
        p.user_id, p.referral_code = done.user_id, done.referral_code
        self.report.steps["registered"] += 1
        if self.chance(w.KYC * p.source.quality ** 0.3):
            self.later(self.clock.now(), "kyc", p)

    async def _kyc(self, uow: Any, p: Person) -> None:
        surname = self.random.choice(w.SURNAMES)
        given = "".join(self.random.choices(w.GIVEN, k=self.random.choice((1, 2, 2))))
        p.name = ("不符" if self.chance(w.KYC_MISMATCH) else "") + surname + given
        p.id_number = self._resident_id(p)
        await self.core.kyc.submit(uow, p.user_id, full_name=p.name, id_type="resident_id",
                                   id_number=p.id_number)
        if not p.name.startswith("不符"):
            self.report.steps["verified"] += 1
            if self.chance(w.CARD):
                self.later(self.clock.now(), "card", p)

    def _resident_id(self, p: Person) -> str:
        while True:
            born = date(1966, 1, 1) + timedelta(days=self.random.randrange(36 * 365))
            body = f"{self.random.choice(w.REGIONS)}{born:%Y%m%d}{self.random.randrange(1000):03d}"
            if body not in self.used_ids:
                self.used_ids.add(body)
                total = sum(int(d) * k for d, k in zip(body, WEIGHTS, strict=True))
                return body + "10X98765432"[total % 11]

    async def _card(self, uow: Any, p: Person) -> None:
        body = f"622588{p.key:09d}"
        total = 0
        for i, d in enumerate(reversed([int(c) for c in body])):
            d = d * 2 if i % 2 == 0 else d
            total += d - 9 if d > 9 else d
        reserved = p.phone
        pending = await self.core.cards.start_binding(
            uow, p.user_id, card_number=body + str((10 - total % 10) % 10),
            reserved_phone=reserved)
        self.pending_codes[p.key] = pending.id
        self.schedule(self.clock.now() + timedelta(minutes=2), "card_code", p)

    async def _card_code(self, uow: Any, p: Person) -> None:
        code = self.core.sms.last_code(self.core.registration.normalize_phone(p.phone))
        await self.core.cards.confirm(uow, p.user_id, self.pending_codes.pop(p.key), code or "")
        self.report.steps["card_bound"] += 1
        if p.role == "borrower":
            if self.chance(w.APPLY):
                self.later(self.clock.now(), "apply", p, minutes=(5, 60))
        elif self.chance(w.RISK):
            self.later(self.clock.now(), "risk", p, minutes=(1, 10))

    async def _risk(self, uow: Any, p: Person) -> None:
        p.risk_style = self.random.choices([s for s, _ in w.RISK_STYLES],
                                           [x for _, x in w.RISK_STYLES])[0]
        answers = {}
        for q in self.core.risk.questionnaire.questions:
            pick = round(p.risk_style * (len(q.options) - 1) / 4)
            pick = min(len(q.options) - 1, max(0, pick + self.random.choice((-1, 0, 0, 1))))
            answers[q.id] = q.options[pick].id
        p.level = (await self.core.risk.assess(uow, p.user_id, answers)).level
        self.report.steps["risk_assessed"] += 1
        if self.chance(w.TOP_UP * p.source.quality ** 0.5):
            self.later(self.clock.now(), "top_up", p)

    async def _top_up(self, uow: Any, p: Person) -> None:
        amount = p.data or self.random.choices(w.TOP_UP_AMOUNTS, w.TOP_UP_WEIGHTS)[0]
        order = await self.core.wallet.request_top_up(
            uow, p.user_id, self.money(amount), f"sim-top-up-{p.key}-{next(self.seq)}")
        uow.after_commit.append(self._remember_order(order.id))
        self.report.steps["top_ups"] += 1
        if p.role == "investor" and (p.invested or self.chance(w.FIRST_INVEST)):
            self.later(self.clock.now(), "invest", p, minutes=(2, 30))

    def _remember_order(self, order_id: str) -> Callable[[], Awaitable[None]]:
        async def remember() -> None:
            async with self.core.uow(read_only=True) as uow:
                ref = (await self.core.wallet.order(uow, order_id)).bank_ref
            if ref:
                self.orders.append(ref)
        return remember

    # Investing ----------------------------------------------------------------------------

    async def _open_listings(self, uow: Any) -> list[Any]:
        if self.listings is None:
            page = await self.core.listings.browse(uow, ListingFilter(), page=1, page_size=50)
            self.listings = list(page.items)
        return self.listings

    async def _invest(self, uow: Any, p: Person) -> None:
        available = (await self.core.ledger.balance(
            uow, user_account(p.user_id, "available"))).amount
        may = self.core.risk.questionnaire.may_invest
        listings = [x for x in await self._open_listings(uow)
                    if x.remaining.amount > 0 and may(p.level, x.risk_level)]
        self.random.shuffle(listings)
        bids = 0
        for listing in listings[:self.random.choice((1, 2, 3, 4))]:
            step = self.core.settings.lending.bid_multiple
            most = min(available, listing.remaining.amount)
            if not p.invested:
                most = min(most, self.core.settings.lending.novice_cap)
            units = int(most // step)
            if units < int(self.core.settings.lending.min_bid // step):
                break
            if listing.remaining.amount <= min(most, Decimal(3000)):
                amount = listing.remaining.amount  # "invest the rest"
            else:
                amount = step * (units if self.chance(0.4) else
                                 self.random.randint(max(1, units // 3), units))
            try:
                async with uow.savepoint():
                    await self.core.investing.invest(uow, BidRequest(
                        p.user_id, listing.id, self.money(amount),
                        f"sim-bid-{p.key}-{next(self.seq)}", channel=p.source.channel))
            except DomainError as exc:
                self.report.refused[f"invest:{type(exc).__name__}"] += 1
                continue
            self.listings = None  # remaining amounts changed
            available -= amount
            bids += 1
            self.report.steps["first_investment" if not p.invested else "repeat_investment"] += 1
            if not p.invested and p.referral_code:
                self.referrers.append(p.referral_code)  # happy investors invite friends
            if not p.invested and self.chance(w.AUTO_INVEST):
                self.later(self.clock.now(), "auto_rule", p)
            p.invested = True
        if p.invested and self.chance(w.REPEAT):
            when = self._at(self.clock.today() + timedelta(
                days=self.random.randint(*w.REPEAT_EVERY_DAYS)))
            step_name = "top_up" if self.chance(0.5) else "invest"
            self.schedule(when, step_name, p)
        if not bids and not p.invested:  # nothing suitable today: look again in a few days
            self.schedule(self._at(self.clock.today() + timedelta(days=3)), "invest", p)

    async def _auto_rule(self, uow: Any, p: Person) -> None:
        grades = ("AA", "A", "B", "C", "D", "E")[:max(2, p.risk_style + 2)]
        rule = AutoInvestRule(
            grades=grades, min_rate=Decimal("0.06"), max_rate=Decimal("0.24"), min_term=3,
            max_term=36, amount_per_loan=self.money(self.random.choice((100, 200, 500, 1000))),
            keep_balance=self.money(0), total_cap=self.money(self.random.choice(
                (5000, 10000, 20000, 50000))), max_share_pct=Decimal("20"))
        await self.core.auto_invest.authorise(uow, p.user_id, rule)
        self.report.steps["auto_invest_rules"] += 1

    # Borrowing ----------------------------------------------------------------------------

    async def _apply(self, uow: Any, p: Person) -> None:
        from core.services.lending.applications import LoanRequest

        product = self.random.choices([x for x, _ in w.PRODUCTS], [y for _, y in w.PRODUCTS])[0]
        settings = self.core.applications.product(product)
        income = self.random.choices(w.INCOMES, w.INCOME_WEIGHTS)[0]
        amount = min(settings.max_amount, max(settings.min_amount, (
            income * self.random.choice((1, 1, 2, 2, 3, 4)) // 1000 * 1000)))
        term = self.random.choice(settings.terms)
        employment = self.random.choices([x for x, _ in w.EMPLOYMENT],
                                         [y for _, y in w.EMPLOYMENT])[0]
        decision = await self.core.applications.apply(uow, p.user_id, LoanRequest(
            product=product, amount=self.money(amount), term_months=term,
            method=self.random.choice(settings.methods), purpose="日常消费 daily spending",
            monthly_income=income, employment=employment,
            years_at_job=Decimal(self.random.choice((0, 1, 2, 3, 5, 8))),
            monthly_debt_payments=income * Decimal(self.random.choice(("0", "0", "0.1", "0.2"))),
            other_platform_debt=Decimal(self.random.choice((0, 0, 0, 5000, 20000))),
            collateral={"kind": product} if settings.secured else None,
            documents=self.random.choice((0, 1, 2, 2, 3))))
        self.report.steps["applied"] += 1
        p.grade = decision.grade
        late, default = w.BEHAVIOUR.get(decision.grade, (0.3, 0.15))
        roll = self.random.random()
        p.behaviour = "default" if roll < default else "late" if roll < default + late else "good"
        if decision.status == "review":
            self.later(self.clock.now(), "review", p, minutes=(30, 240),
                       data=(decision.application_id, decision.annual_rate or Decimal("0.12")))
        elif decision.status == "approved":
            self._listed(p, decision.loan_id)

    def _listed(self, p: Person, loan_id: int) -> None:
        self.loans[loan_id] = p
        self.report.steps["listed"] += 1
        self.listings = None
        # the next morning's look: disbursed (then withdraw and plan repayments) or not yet
        self.schedule(self._at(self.clock.today() + timedelta(days=1), 9), "withdraw", p,
                      (loan_id, 1))

    async def _review(self, uow: Any, p: Person) -> None:
        officer = self.staff["risk.officer"]
        if self.chance(0.6):
            application_id, rate = p.data
            loan_id = await self.core.applications.approve(uow, application_id, officer, rate)
            self._listed(p, loan_id)
        else:
            await self.core.applications.reject(uow, p.data[0], officer, "policy")

    async def _withdraw(self, uow: Any, p: Person) -> None:
        """The borrower's look at the loan: disburse it if staff must, take the money out, and
        decide (by the behaviour drawn at application) when each installment gets paid."""
        loan_id, looks = p.data
        loans = {x.loan_id: x for x in await self.core.views.borrower(uow, p.user_id)}
        loan = loans.get(loan_id)
        if loan is None:  # staff disburse funded loans of products that wait for them
            try:
                async with uow.savepoint():
                    await self.core.funding.disburse(uow, loan_id, self.staff["risk.officer"])
                loans = {x.loan_id: x for x in await self.core.views.borrower(uow, p.user_id)}
                loan = loans.get(loan_id)
            except DomainError:
                pass  # not funded (yet)
        if loan is None or loan.status != "active":  # still listed: look again tomorrow
            if looks < 10:
                self.schedule(self._at(self.clock.today() + timedelta(days=1), 9), "withdraw",
                              p, (loan_id, looks + 1))
            return
        self.report.steps["disbursed"] += 1
        available = (await self.core.ledger.balance(
            uow, user_account(p.user_id, "available"))).amount
        limit = self.core.settings.wallet.max_withdrawal
        wallet = self.core.settings.wallet
        out = min(available - wallet.withdrawal_fee, limit) // 100 * 100
        if out >= wallet.min_withdrawal:
            await self.core.wallet.request_withdrawal(
                uow, p.user_id, self.money(out), f"sim-out-{loan_id}")
            self.report.steps["withdrawals"] += 1
        if p.behaviour == "good" and self.chance(w.REAPPLY):  # a good borrower comes back
            self.schedule(self._at(self.clock.today() + timedelta(
                days=self.random.randint(*w.REAPPLY_AFTER_DAYS))), "apply", p)
        default_from = self.random.randint(1, max(1, len(loan.schedule) - 1))
        for n, line in enumerate(loan.schedule, start=1):
            if p.behaviour == "default" and n >= default_from:
                if self.chance(w.RECOVERY) and n == default_from:
                    pay_on = line.due_date + timedelta(days=self.random.randint(40, 80))
                    self.schedule(self._at(pay_on), "pay", p, (loan_id, "late"))
                break
            if p.behaviour == "late" and self.chance(0.5):
                pay_on = line.due_date + timedelta(days=self.random.choice(w.LATE_DAYS))
                self.schedule(self._at(pay_on), "pay", p, (loan_id, "late"))
                if self.chance(w.PROMISE):
                    self.schedule(self._at(line.due_date + timedelta(days=4)), "pay", p,
                                  (loan_id, "promise"))
            else:
                self.schedule(self._at(line.due_date - timedelta(days=1)), "pay", p,
                              (loan_id, "early"))

    async def _pay(self, uow: Any, p: Person) -> None:
        loan_id, how = p.data
        owed = await self.core.repayments.owed(uow, loan_id)
        if how == "promise":
            if owed.overdue.amount > 0:
                kept = self.chance(w.PROMISE_KEPT)
                day = self.clock.today() + timedelta(days=self.random.randint(2, 5))
                await self.core.collections.promise(uow, loan_id, day, owed.overdue + owed.penalty)
                self.report.steps["promises"] += 1
                if kept:
                    self.schedule(self._at(day - timedelta(days=1)), "pay", p, (loan_id, "late"))
            return
        amount = (owed.overdue + owed.penalty).amount
        if how == "settle_due":  # paid by hand rather than waiting for tomorrow's auto-debit
            if amount > 0:
                await self.core.repayments.repay(uow, loan_id, self.money(amount),
                                                 request_key=f"sim-repay-{next(self.seq)}")
            return
        if how == "early" and amount <= 0:
            amount = owed.next_due_amount.amount
        if amount <= 0:
            return
        order = await self.core.wallet.request_top_up(
            uow, p.user_id, self.money(amount), f"sim-pay-{loan_id}-{next(self.seq)}")
        uow.after_commit.append(self._remember_order(order.id))
        if how == "late":
            self.schedule(self.clock.now() + timedelta(minutes=30), "pay", p,
                          (loan_id, "settle_due"))
        self.report.steps["repayments"] += 1

    # Support ------------------------------------------------------------------------------

    def _support_contacts(self, day: date) -> None:
        if self.chat is None:
            return
        known = [p for p in self.people if p.identity is not None]
        if not known:
            return
        for _ in range(self._poisson(len(known) * w.CONTACT_RATE)):
            self.schedule(self._at(day), "ask", self.random.choice(known))
        for _ in range(self._poisson(len(known) * w.FEEDBACK)):
            self.schedule(self._at(day), "feedback", self.random.choice(known))

    def _poisson(self, mean: float) -> int:
        whole = int(mean)
        return whole + (1 if self.chance(mean - whole) else 0)

    async def _ask(self, uow: Any, p: Person) -> None:
        assert self.chat is not None
        self.report.steps["conversations"] += 1
        if self.chance(w.ASK_HUMAN):
            self.schedule(self.clock.now() + timedelta(seconds=20), "human", p, "/human")
            return
        if self.chance(w.COMPLAIN):
            text = w.COMPLAINTS[p.locale]
            self.schedule(self.clock.now() + timedelta(seconds=20), "human", p, text)
            return
        miss = self.chance(w.FAQ_MISS)
        text = self.random.choice(w.MISSES[p.locale] if miss else self.chat.questions(p.locale))
        await self.chat.say(uow, p.source.channel, p.chat_id, p.locale, text=text)
        if await self._handed_over(uow, p):
            pass
        elif miss and self.chance(w.AFTER_MISS_HUMAN):
            self.schedule(self.clock.now() + timedelta(minutes=1), "human", p, "/human")

    async def _human(self, uow: Any, p: Person) -> None:
        assert self.chat is not None
        await self.chat.say(uow, p.source.channel, p.chat_id, p.locale, text=p.data)
        await self._handed_over(uow, p)

    async def _handed_over(self, uow: Any, p: Person) -> bool:
        """Did the bot put the chat in the queue by itself (words asking for a person or
        complaining, repeated misses)? Then an agent will come."""
        assert self.chat is not None
        if (p.source.channel, p.chat_id) not in await self.chat.waiting(uow):
            return False
        if p.chat_id not in self.agent_due:
            self._agent_later(p)
        return True

    def _agent_later(self, p: Person) -> None:
        """An agent takes the queued chat minutes later, or after support opens."""
        self.agent_due.add(p.chat_id)
        self.report.steps["handovers"] += 1
        wait = timedelta(minutes=self.random.choice(w.AGENT_MINUTES))
        when = self.clock.now() + wait
        opens = support_hours(self.core.settings.support).reopens(self.clock.local(when))
        if opens is not None:
            when = opens + wait
        self.schedule(when, "agent", p)

    async def _agent(self, uow: Any, p: Person) -> None:
        assert self.chat is not None
        self.agent_due.discard(p.chat_id)
        conversation_id = (await self.chat.waiting(uow)).get((p.source.channel, p.chat_id))
        if conversation_id is None:
            return
        agent_id, name = self.random.choice(self.agents)
        text = w.AGENT_REPLIES[p.locale]
        await self.chat.agent_answers(uow, conversation_id, agent_id, name, text, resolve=True)
        self.report.steps["agent_resolved"] += 1
        if self.chance(w.RATE):
            stars = self.random.choices([s for s, _ in w.RATINGS], [x for _, x in w.RATINGS])[0]
            self.schedule(self.clock.now() + timedelta(minutes=self.random.randint(1, 30)),
                          "rate", p, stars)

    async def _rate(self, uow: Any, p: Person) -> None:
        assert self.chat is not None
        await self.chat.say(uow, p.source.channel, p.chat_id, p.locale, action=f"rate:{p.data}")
        self.report.steps["ratings"] += 1

    async def _feedback(self, uow: Any, p: Person) -> None:
        assert self.chat is not None
        await self.chat.say(uow, p.source.channel, p.chat_id, p.locale, action="flow:feedback")
        await self.chat.say(uow, p.source.channel, p.chat_id, p.locale,
                            text=self.random.choice(w.FEEDBACK_TEXTS[p.locale]))
        self.report.steps["feedback"] += 1
        await self._handed_over(uow, p)

    # Helpers ------------------------------------------------------------------------------

    def money(self, amount: Decimal | int | str) -> Money:
        return Money.of(Decimal(str(amount)), self.core.currency)

    async def _event_count(self) -> int:
        from sqlalchemy import func, select

        from core.adapters.tables import analytics_events

        async with self.core.uow(read_only=True) as uow:
            return int((await uow.conn.execute(
                select(func.count()).select_from(analytics_events))).scalar_one())


async def simulate(core: Core, *, users: int, days: int, seed: int, end: date | None = None,
                   chat: ChatPort | None = None,
                   progress: Callable[[int], None] | None = None) -> Report:
    """Create ``days`` days of history ending on ``end`` (default: yesterday) with about
    ``users`` registered accounts. ``core`` must run on a ``ManualClock``; afterwards the clock
    stands at the end of ``end``."""
    end = end or (core.clock.today() - timedelta(days=1))
    simulation = Simulation(core, users=users, days=days, seed=seed, end=end, chat=chat,
                            progress=progress)
    return await simulation.run()
