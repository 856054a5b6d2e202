"""Borrowers, investors and listings for lending tests, built through the services."""

from __future__ import annotations

import itertools
from decimal import Decimal

from core.bootstrap import Core
from core.domain.money import Money
from core.services.lending.applications import LoanRequest
from tests.integration.accounts_helpers import Person, onboard

_keys = itertools.count(1)


def cny(text: str | int) -> Money:
    return Money.of(Decimal(str(text)))


async def investor(core: Core, balance: str = "100000.00", level: str = "high") -> Person:
    person = await onboard(core, roles={"investor"})
    answers = {q.id: (q.options[-1].id if level == "high" else q.options[0].id)
               for q in core.risk.questionnaire.questions}
    async with core.uow() as uow:
        await core.risk.assess(uow, person.user_id, answers)
        order = await core.wallet.request_top_up(uow, person.user_id, cny(balance),
                                                 f"fund-{next(_keys)}")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        ref = (await core.wallet.order(uow, order.id)).bank_ref
    await core.bank.settle(ref, succeeded=True)
    return person


async def borrower(core: Core) -> Person:
    return await onboard(core, roles={"borrower"})


def strong_request(amount: str = "10000", months: int = 12, product: str = "consumer",
                   method: str = "equal_installment", **kwargs: object) -> LoanRequest:
    values: dict = {"product": product, "amount": cny(amount), "term_months": months,
                    "method": method, "purpose": "装修 home renovation",
                    "monthly_income": Decimal("30000"), "employment": "civil_servant",
                    "years_at_job": Decimal("8"), "monthly_debt_payments": Decimal("0"),
                    "other_platform_debt": Decimal("0"), "collateral": None, "documents": 2}
    values.update(kwargs)
    return LoanRequest(**values)


async def apply(core: Core, person: Person, request: LoanRequest):
    async with core.uow() as uow:
        decision = await core.applications.apply(uow, person.user_id, request)
        await uow.commit()
    return decision


async def listed_loan(core: Core, amount: str = "10000", **kwargs: object) -> tuple[Person, int]:
    """A borrower and a loan listed for investors (approved by staff if the policy asks)."""
    person = await borrower(core)
    decision = await apply(core, person, strong_request(amount, **kwargs))
    if decision.status == "review":
        async with core.uow() as uow:
            loan_id = await core.applications.approve(uow, decision.application_id, 1,
                                                      Decimal("0.10"))
            await uow.commit()
        return person, loan_id
    assert decision.status == "approved", decision
    return person, decision.loan_id


async def fund_promotions(core: Core, amount: str = "10000.00") -> None:
    """The platform pays its own money into custody for promotions."""
    from core.services.platform_funds import deposit

    async with core.uow() as uow:
        await deposit(uow, core.ledger, "promotion_budget", cny(amount),
                      f"budget-{next(_keys)}")
        await uow.commit()
