"""The monthly operating figures of the 2017 information-disclosure guidelines
(网络借贷信息中介机构业务活动信息披露指引), as of the end of a chosen month.

Platform-wide by law: the dashboard filters do not apply. Balances come from the book rebuilt
for the month's last day (``core.analytics.book``; today for the month in progress). Each
figure's definition, with its Chinese name, is in ``DEFINITIONS`` (returned with the
figures) and in ``docs/metrics.md``.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from config.settings import Settings
from core.adapters.tables import compensations
from core.adapters.uow import UnitOfWork
from core.analytics import holders, rollups
from core.analytics.book import ZERO, add_months, book
from core.analytics.filters import day_start
from core.analytics.numbers import currency, money, ratio, total
from core.domain.overdue import DEFAULT_BUCKETS

BUCKETS = tuple(b.name for b in DEFAULT_BUCKETS)

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
    c = compensations.c
    paid = (await uow.conn.execute(select(total(c.amount), func.count()).where(
        c.paid_at < end))).one()
    built = await rollups.holders_at(uow, day)
    if built is None:
        held = (await book(uow, [day], settings))[day]
        states, h = rollups.tally(held), await holders.figures(uow, day, held, cur)
    else:
        states, h = built

    def m(value: Decimal) -> Decimal:
        return money(value, cur)

    def over(names: Any, figure: str) -> Decimal:
        return sum((getattr(states[s], figure) for s in names if s in states), ZERO)

    def count(names: Any) -> int:
        return sum(states[s].loans for s in names if s in states)

    late, late90 = BUCKETS[1:], [b.name for b in DEFAULT_BUCKETS if b.min_days > 90]
    outstanding = over(BUCKETS, "principal")
    on_book = count(BUCKETS)
    cumulative_borrowers, cumulative_lenders = h["borrowers"], h["lenders"]
    return {
        "month": first.strftime("%Y-%m"), "as_of": day.isoformat(),
        "cumulative_lending": {"amount": m(h["lending"]), "count": h["loans"]},
        "outstanding": {"amount": m(outstanding), "count": on_book},
        "interest_outstanding": m(over(BUCKETS, "interest")),
        "lenders": {"cumulative": cumulative_lenders, "current": h["current_lenders"]},
        "borrowers": {"cumulative": cumulative_borrowers, "current": h["current_borrowers"]},
        "per_person": {
            "lending_per_borrower": m(Decimal(h["lending"]) / cumulative_borrowers)
            if cumulative_borrowers else None,
            "lent_per_lender": m(Decimal(h["lent"]) / cumulative_lenders)
            if cumulative_lenders else None},
        "concentration": {
            "top10_borrowers": _top(h, "owed", 10, cur,
                                    "待还金额 of the 10 largest borrowers / all"),
            "largest_borrower": _top(h, "owed", 1, cur, "待还金额 of the largest borrower / all"),
            "top10_lenders": _top(h, "claims", 10, cur,
                                  "出借余额 of the 10 largest lenders / all"),
            "largest_lender": _top(h, "claims", 1, cur, "出借余额 of the largest lender / all")},
        "related_party": {"amount": m(ZERO), "count": 0, "note": RELATED_PARTY_NOTE},
        "overdue": {"amount": m(over(late, "overdue_principal")
                                + over(late, "overdue_interest")), "count": count(late)},
        "overdue_90": {"amount": m(over(BUCKETS, "overdue_beyond_90")),
                       "count": count(late90)},
        "compensation": {"amount": m(paid[0]), "count": int(paid[1])},
        "project_overdue_rate": ratio(count(late90), on_book,
                                      DEFINITIONS["project_overdue_rate"]),
        "amount_overdue_rate": ratio(m(over(late90, "principal")), m(outstanding),
                                     DEFINITIONS["amount_overdue_rate"]),
        "written_off": m(over(["written_off"], "principal")),
        "fees": fees(settings),
        "definitions": DEFINITIONS,
    }


def _top(h: dict[str, Any], figure: str, n: int, cur: Any, definition: str) -> dict[str, Any]:
    largest = h[f"{figure}_top{n}"]
    return ratio(money(largest, cur), money(h[figure], cur), definition)


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

