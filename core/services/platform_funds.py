"""The platform's own money in custody: capital and the promotion budget.

Promotions (red packets, referral rewards, interest boosts) are paid from
``platform:promotion_budget``, which the platform must first fund with its own money paid into the
custody bank; a promotion never spends users' money, and when the budget is used up vouchers are
refused until operations refill it.
"""

from __future__ import annotations

from core.adapters.uow import UnitOfWork
from core.domain.money import Money
from core.ledger import Ledger, Posted, Transfer
from core.services import audit

FUNDS = {"capital": "platform:capital", "promotion_budget": "platform:promotion_budget"}


async def deposit(uow: UnitOfWork, ledger: Ledger, fund: str, amount: Money, key: str, *,
                  staff_id: int | None = None) -> Posted:
    """Money the platform paid into custody for ``fund`` (idempotent by ``key``)."""
    if fund not in FUNDS:
        raise ValueError(f"fund must be one of {sorted(FUNDS)}")
    posted = await ledger.post(uow, Transfer.simple(
        f"platform_deposit:{key}", "platform_deposit", debit_account="platform:custody_cash",
        credit_account=FUNDS[fund], amount=amount, meta={"fund": fund}))
    if posted.status == "applied":
        await audit.record(uow, "platform_deposit", "fund", fund, actor_kind="staff",
                           actor_id=staff_id, details={"amount": str(amount.amount)})
    return posted
