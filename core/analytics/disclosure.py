"""The monthly operating figures of the 2017 information-disclosure guidelines
(网络借贷信息中介机构业务活动信息披露指引), as of the end of a chosen month.

Platform-wide by law: the dashboard filters do not apply. Balances come from the book rebuilt
for the month's last day (``core.analytics.book``; today for the month in progress). Each
figure's definition, with its Chinese name, is in ``DEFINITIONS`` (returned with the
figures) and in ``docs/metrics.md``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import distinct, func, select

from config.settings import Settings
from core.adapters.tables import bids, compensations, loans
from core.adapters.uow import UnitOfWork
from core.analytics.book import ZERO, add_months, book
from core.analytics.filters import day_start
from core.analytics.numbers import currency, money, ratio, total

DEFINITIONS = {
    "cumulative_lending": "累计借贷金额及笔数: principal of every loan disbursed since the "
                          "platform began, and their number",
    "outstanding": "借贷余额及笔数: principal not yet repaid of loans on the book (disbursed, "
                   "not repaid, not written off), and their number",
    "interest_outstanding": "利息余额: scheduled interest not yet paid on loans on the book",
    "lenders": "出借人: investors with a bid in a disbursed loan; cumulative = ever, current = "
               "holding a claim on a loan on the book",
    "borrowers": "借款人: borrowers of disbursed loans; cumulative = ever, current = with a loan "
                 "on the book",
    "per_person": "人均累计借款金额 = cumulative lending / cumulative borrowers; "
                  "人均累计出借金额 = cumulative amount lent / cumulative lenders",
    "concentration": "前十大/最大单一借款人待还金额占比: the 10 / 1 largest borrowers' principal + "
                     "scheduled interest still to repay / everyone's; 最大十户/单户出借余额占比: "
                     "the 10 / 1 largest lenders' outstanding principal claims / all claims "
                     "(a claim = the loan's outstanding principal x bid / loan amount)",
    "related_party": "关联关系借款余额及笔数: loans to parties related to the platform",
    "overdue": "逾期金额及笔数: unpaid principal + interest of installments past due (after the "
               "grace period; penalties apart) of loans on the book, and the loans with such "
               "installments",
    "overdue_90": "逾期90天（不含）以上金额及笔数: unpaid principal + interest of installments "
                  "more than 90 days past due, and the loans more than 90 days past due",
    "compensation": "累计代偿金额及笔数: what the third-party protection fund paid investors on "
                    "written-off loans, since the platform began, and the number of loans",
    "project_overdue_rate": "项目逾期率 = loans more than 90 days past due / loans on the book",
    "amount_overdue_rate": "金额逾期率 = outstanding principal of loans more than 90 days past due "
                           "/ outstanding principal (借贷余额)",
    "written_off": "written off and not recovered (not a guideline figure): principal that left "
                   "the book by write-off, less what was recovered since",
}
RELATED_PARTY_NOTE = ("no related-party flag is recorded, so 0 is reported; it needs a "
                      "related-party register (staff, shareholders, their relatives and "
                      "companies: identity hashes) checked against borrowers when a loan is "
                      "applied for, and a flag on the loan")


def month_bounds(month: date) -> tuple[date, date]:
    first = month.replace(day=1)
    return first, add_months(first, 0)


async def disclosure(uow: UnitOfWork, month: date, *, settings: Settings) -> dict[str, Any]:
    """The figures for the month containing ``month``, as of its last day (or today):
    ``{"month", "as_of", "cumulative_lending": {"amount", "count"}, "outstanding": {"amount",
    "count"}, "interest_outstanding", "lenders": {"cumulative", "current"}, "borrowers":
    {"cumulative", "current"}, "per_person": {"lending_per_borrower", "lent_per_lender"},
    "concentration": {"top10_borrowers", "largest_borrower", "top10_lenders",
    "largest_lender"} (ratios), "related_party": {"amount", "count", "note"}, "overdue":
    {"amount", "count"}, "overdue_90": {"amount", "count"}, "compensation": {"amount",
    "count"}, "project_overdue_rate", "amount_overdue_rate" (ratios), "written_off",
    "fees", "definitions"}``."""
    cur = currency(settings)
    first, last = month_bounds(month)
    day = min(last, uow.clock.today())
    end = day_start(day + timedelta(days=1), uow.clock.tz)
    lo, b, c = loans.c, bids.c, compensations.c
    lending = (await uow.conn.execute(select(total(lo.amount), func.count(), func.count(
        distinct(lo.borrower_id))).where(lo.disbursed_at.is_not(None), lo.disbursed_at < end))
    ).one()
    lent = (await uow.conn.execute(
        select(total(b.amount), func.count(distinct(b.investor_id)))
        .select_from(bids.join(loans, lo.id == b.loan_id))
        .where(b.status == "active", lo.disbursed_at < end))).one()
    paid = (await uow.conn.execute(select(total(c.amount), func.count()).where(
        c.paid_at < end))).one()
    held = (await book(uow, [day], settings))[day]
    on_book = {loan.loan_id: loan for loan in held if loan.state == "open"}
    outstanding = sum((loan.principal for loan in on_book.values()), ZERO)
    owed: dict[int, Decimal] = defaultdict(Decimal)
    for loan in on_book.values():
        owed[loan.borrower_id] += loan.principal + loan.interest
    claims: dict[int, Decimal] = defaultdict(Decimal)
    ids = list(on_book)
    for part in (ids[i:i + 5000] for i in range(0, len(ids), 5000)):
        for row in (await uow.conn.execute(
                select(b.investor_id, b.loan_id, total(b.amount).label("amount"))
                .where(b.loan_id.in_(part), b.status == "active")
                .group_by(b.investor_id, b.loan_id))).all():
            loan = on_book[row.loan_id]
            claims[row.investor_id] += loan.principal * Decimal(row.amount) / loan.amount
    late90 = [loan for loan in on_book.values() if loan.dpd > 90]
    late = [loan for loan in on_book.values() if loan.dpd > 0]

    def m(value: Decimal) -> Decimal:
        return money(value, cur)

    cumulative_borrowers, cumulative_lenders = int(lending[2]), int(lent[1])
    return {
        "month": first.strftime("%Y-%m"), "as_of": day.isoformat(),
        "cumulative_lending": {"amount": m(lending[0]), "count": int(lending[1])},
        "outstanding": {"amount": m(outstanding), "count": len(on_book)},
        "interest_outstanding": m(sum((loan.interest for loan in on_book.values()), ZERO)),
        "lenders": {"cumulative": cumulative_lenders,
                    "current": sum(1 for v in claims.values() if v > 0)},
        "borrowers": {"cumulative": cumulative_borrowers, "current": len(owed)},
        "per_person": {
            "lending_per_borrower": m(Decimal(lending[0]) / cumulative_borrowers)
            if cumulative_borrowers else None,
            "lent_per_lender": m(Decimal(lent[0]) / cumulative_lenders)
            if cumulative_lenders else None},
        "concentration": {
            "top10_borrowers": _top(owed, 10, cur, "待还金额 of the 10 largest borrowers / all"),
            "largest_borrower": _top(owed, 1, cur, "待还金额 of the largest borrower / all"),
            "top10_lenders": _top(claims, 10, cur, "出借余额 of the 10 largest lenders / all"),
            "largest_lender": _top(claims, 1, cur, "出借余额 of the largest lender / all")},
        "related_party": {"amount": m(ZERO), "count": 0, "note": RELATED_PARTY_NOTE},
        "overdue": {"amount": m(sum((loan.overdue for loan in late), ZERO)),
                    "count": len(late)},
        "overdue_90": {"amount": m(sum((loan.overdue_beyond(90) for loan in late), ZERO)),
                       "count": len(late90)},
        "compensation": {"amount": m(paid[0]), "count": int(paid[1])},
        "project_overdue_rate": ratio(len(late90), len(on_book),
                                      DEFINITIONS["project_overdue_rate"]),
        "amount_overdue_rate": ratio(m(sum((loan.principal for loan in late90), ZERO)),
                                     m(outstanding), DEFINITIONS["amount_overdue_rate"]),
        "written_off": m(sum((loan.principal for loan in held if loan.state == "written_off"),
                             ZERO)),
        "fees": fees(settings),
        "definitions": DEFINITIONS,
    }


def _top(amounts: dict[int, Decimal], n: int, cur: Any, definition: str) -> dict[str, Any]:
    everything = sum(amounts.values(), ZERO)
    largest = sum(sorted(amounts.values(), reverse=True)[:n], ZERO)
    return ratio(money(largest, cur), money(everything, cur), definition)


def fees(settings: Settings) -> dict[str, Any]:
    """收费标准: what the platform charges, from the settings (percent values)."""
    lending, servicing = settings.lending, settings.servicing
    return {
        "products": [{"product": key, "name_zh": p.name_zh, "name_en": p.name_en,
                      "service_fee_pct": p.service_fee_pct,
                      "management_fee_pct": p.management_fee_pct}
                     for key, p in lending.products.items()],
        "protection_contribution_pct": lending.protection_contribution_pct,
        "early_repayment_fee_pct": servicing.early_repayment_fee_pct,
        "penalty_daily_pct": servicing.penalty_daily_pct,
        "penalty_cap_pct": servicing.penalty_cap_pct,
        "grace_days": servicing.grace_days,
        "withdrawal_fee": settings.wallet.withdrawal_fee,
        "notes": {"service_fee_pct": "of the loan amount, taken at disbursement (borrower)",
                  "management_fee_pct": "of the interest, penalty and early fee investors "
                                        "receive (investor)",
                  "protection_contribution_pct": "of the loan amount at disbursement, to the "
                                                 "third-party protection fund",
                  "early_repayment_fee_pct": "of the principal repaid early",
                  "penalty_daily_pct": "per day on the overdue amount, simple, capped at "
                                       "penalty_cap_pct of the installment",
                  "withdrawal_fee": "per withdrawal"},
    }

