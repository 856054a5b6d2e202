"""Overdue, collections, vintages, roll rates, the fund and the monthly disclosure, on two loans
disbursed on 2026-03-02: "late" (10,000, never paid: its installments fall due on the 2nd of
each month from April) and "good" (5,000, every installment paid on its due date)."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

from sqlalchemy import select

from core.adapters.tables import installments, loans
from core.analytics import credit, disclosure, overview
from core.analytics.filters import Filters
from tests.integration.lending_helpers import cny
from tests.integration.servicing_helpers import (
    active_loan,
    drain_wallet,
    fund_wallet,
    repay,
    run_day,
    schedule,
    set_day,
)


def owed(row) -> Decimal:
    return Decimal(row.principal) + Decimal(row.interest)


async def two_loans(core, paid_through: date) -> dict:
    """The late loan and the good one, the good one paid on every due date up to
    ``paid_through``."""
    late_borrower, _, late = await active_loan(core, "10000")
    await drain_wallet(core, late_borrower)
    _, _, good = await active_loan(core, "5000", shares=("5000",))
    good_rows = await schedule(core, good)
    for row in good_rows:
        if row.due_date > paid_through:
            break
        set_day(core, row.due_date, time(9))
        await repay(core, good, str(owed(row)), key=f"good-{row.period}")
    return {"late": late, "good": good, "late_rows": await schedule(core, late),
            "good_rows": good_rows}


def paid_principal(rows, through: date) -> Decimal:
    return sum((Decimal(r.principal) for r in rows if r.due_date <= through), Decimal(0))


async def test_an_overdue_loan_falls_in_its_bucket_with_both_par_forms(core):
    book = await two_loans(core, date(2026, 6, 2))
    await run_day(core, date(2026, 6, 10))
    late = book["late_rows"]
    async with core.uow(read_only=True) as uow:
        page = await credit.portfolio(uow, Filters(date(2026, 6, 1), date(2026, 6, 10)),
                                      settings=core.settings)
    now = page["current"]
    good_left = Decimal("5000") - paid_principal(book["good_rows"], date(2026, 6, 2))
    outstanding = Decimal("10000.00") + good_left
    assert now["outstanding_principal"] == outstanding
    # on 10 June the late loan's installments are 69, 39 and 8 days past due
    assert now["overdue"] == {"loans": 1, "amount": sum(owed(r) for r in late[:3]),
                              "principal": sum(Decimal(r.principal) for r in late[:3]),
                              "interest": sum(Decimal(r.interest) for r in late[:3]),
                              "late_loans_principal": Decimal("10000.00")}
    buckets = {b["bucket"]: (b["loans"], b["outstanding_principal"]) for b in now["buckets"]}
    assert buckets == {"current": (1, good_left), "M1": (0, 0), "M2": (0, 0),
                       "M3": (1, Decimal("10000.00")), "M3+": (0, 0)}
    par30 = now["par30"]
    assert par30["overdue_amount_ratio"]["numerator"] == owed(late[0]) + owed(late[1])
    assert par30["overdue_amount_ratio"]["denominator"] == outstanding
    assert par30["overdue_amount_ratio"]["value"] == (
        (owed(late[0]) + owed(late[1])) / outstanding).quantize(Decimal("0.0001"))
    assert par30["late_loans_ratio"]["numerator"] == Decimal("10000.00")
    assert "more than 30 days" in par30["late_loans_ratio"]["definition"]
    assert now["par90"]["overdue_amount_ratio"]["numerator"] == 0
    assert now["par90"]["late_loans_ratio"]["value"] == 0
    # the previous period ends on 31 May: 59 and 29 days past due, so M2
    before = page["previous"]
    assert page["previous_as_of"] == "2026-05-31"
    assert {b["bucket"]: b["loans"] for b in before["buckets"]}["M2"] == 1
    assert before["overdue"]["amount"] == owed(late[0]) + owed(late[1])
    assert before["par30"]["overdue_amount_ratio"]["numerator"] == owed(late[0])


async def test_the_rebuilt_book_agrees_with_the_live_tables(core):
    book = await two_loans(core, date(2026, 5, 2))
    set_day(core, date(2026, 5, 20), time(9))
    await fund_wallet(core, await _borrower(core, book["late"]), "300.00")
    part = await repay(core, book["late"], "300.00", key="part")
    await run_day(core, date(2026, 6, 10))
    async with core.uow(read_only=True) as uow:
        now = (await credit.portfolio(uow, Filters(date(2026, 6, 1), date(2026, 6, 30)),
                                      settings=core.settings))["current"]
        live = (await uow.conn.execute(select(loans).where(loans.c.status.in_(
            ("active", "overdue"))))).all()
        unpaid = (await uow.conn.execute(select(installments).where(
            installments.c.status != "paid", installments.c.due_date < date(2026, 6, 10))
        )).all()
    assert part.principal.amount + part.interest.amount == Decimal("300.00")
    assert now["outstanding_principal"] == sum(Decimal(r.principal_outstanding) for r in live)
    assert now["overdue"]["amount"] == sum(
        owed(r) - Decimal(r.paid_principal) - Decimal(r.paid_interest) for r in unpaid)
    assert now["overdue"]["loans"] == sum(1 for r in live if r.dpd > 0)
    assert max(r.dpd for r in live) == 69


async def _borrower(core, loan_id: int):
    from tests.integration.accounts_helpers import Person

    async with core.uow(read_only=True) as uow:
        borrower_id = (await uow.conn.execute(select(loans.c.borrower_id).where(
            loans.c.id == loan_id))).scalar_one()
    return Person(borrower_id, "", None)  # type: ignore[arg-type]


async def test_vintages_and_roll_rates_follow_the_late_loan_month_by_month(core):
    await two_loans(core, date(2026, 6, 2))
    set_day(core, date(2026, 6, 10), time(12))
    async with core.uow(read_only=True) as uow:
        (march,) = await credit.vintages(uow, Filters(date(2026, 3, 1), date(2026, 3, 31)),
                                         settings=core.settings)
        rolls = await credit.roll_rates(uow, Filters(date(2026, 5, 1), date(2026, 6, 10)),
                                        settings=core.settings)
    assert march["cohort"] == "2026-03" and march["loans"] == 2
    assert march["disbursed"] == Decimal("15000.00")
    # end of March: nothing due; end of April: 28 days late (M1); end of May: 59 (M2)
    assert [(p["mob"], p["month_end"], p["bad"]) for p in march["curve"]] == [
        (0, "2026-03-31", Decimal("0.00")), (1, "2026-04-30", Decimal("0.00")),
        (2, "2026-05-31", Decimal("10000.00"))]
    assert march["curve"][2]["share"] == Decimal("0.6667")
    assert rolls["transitions"] == ["2026-04-30 -> 2026-05-31"]
    rows = {r["from"]: r for r in rolls["matrix"]}
    assert rows["M1"]["loans"] == 1 and rows["M1"]["principal"] == Decimal("10000.00")
    assert rows["M1"]["to"]["M2"] == {"loans": 1, "share": Decimal("1.0000")}
    assert rows["current"]["to"]["current"] == {"loans": 1, "share": Decimal("1.0000")}
    assert rows["M3"]["loans"] == 0 and rows["M3"]["to"]["M3+"]["share"] is None


async def test_the_collections_funnel_and_what_was_recovered(core):
    book = await two_loans(core, date(2026, 6, 2))
    await run_day(core, date(2026, 6, 10))
    async with core.uow() as uow:
        (task,) = await core.collections.open_tasks(uow)
        await core.collections.log_outcome(uow, task["id"], 7, "contacted")
        await core.collections.promise(uow, book["late"], date(2026, 6, 12), cny("500.00"))
        await uow.commit()
    set_day(core, date(2026, 6, 11), time(9))
    await fund_wallet(core, await _borrower(core, book["late"]), "500.00")
    paid = await repay(core, book["late"], "500.00", key="promised")
    await run_day(core, date(2026, 6, 13))
    async with core.uow(read_only=True) as uow:
        page = await credit.collections(uow, Filters(date(2026, 6, 1), date(2026, 6, 13)),
                                        settings=core.settings)
    now = page["current"]
    assert (now["tasks"], now["worked"], now["reached"]) == (1, 1, 1)
    assert (now["promises"], now["kept"], now["broken"], now["pending"]) == (1, 1, 0, 0)
    # overdue on 31 May: the April and May installments; the penalty was paid first
    late = book["late_rows"]
    assert now["recovery"]["denominator"] == owed(late[0]) + owed(late[1])
    assert now["recovery"]["numerator"] == paid.principal.amount + paid.interest.amount
    assert paid.penalty.amount > 0
    assert page["previous"]["tasks"] == 0


async def test_a_compensated_write_off_shows_in_the_fund_and_the_disclosure(core):
    book = await two_loans(core, date(2026, 6, 2))
    await run_day(core, date(2026, 6, 10))
    async with core.uow() as uow:
        compensation = await core.write_offs.write_off(uow, book["late"], staff_id=9)
        await uow.commit()
    # the fund got 1% of each loan at disbursement and pays it all out
    assert compensation.amount == Decimal("150.00")
    june = Filters(date(2026, 6, 1), date(2026, 6, 30))
    async with core.uow(read_only=True) as uow:
        fund = await credit.protection_fund(uow, june, settings=core.settings)
        month = await disclosure.disclosure(uow, date(2026, 6, 15), settings=core.settings)
        may = await disclosure.disclosure(uow, date(2026, 5, 1), settings=core.settings)
        page = await overview.overview(uow, june, settings=core.settings)
    now = fund["current"]
    assert now["balance"] == Decimal("0.00")
    assert now["compensations"] == {"count": 1, "amount": Decimal("150.00")}
    assert now["cumulative_compensation"] == {"count": 1, "amount": Decimal("150.00")}
    assert fund["previous"]["balance"] == Decimal("150.00")
    assert fund["previous"]["contributions"] == Decimal("0.00")
    assert month["compensation"] == {"amount": Decimal("150.00"), "count": 1}
    assert month["written_off"] == Decimal("10000.00")
    assert month["outstanding"]["count"] == 1 and month["overdue"]["count"] == 0
    assert may["compensation"] == {"amount": Decimal("0.00"), "count": 0}
    assert may["overdue"]["count"] == 1
    assert page["outstanding_balance"]["previous"] == may["outstanding"]["amount"]


async def test_the_disclosure_figures_of_a_month(core):
    book = await two_loans(core, date(2026, 7, 2))
    set_day(core, date(2026, 8, 3), time(12))
    async with core.uow(read_only=True) as uow:
        july = await disclosure.disclosure(uow, date(2026, 7, 1), settings=core.settings)
    late, good = book["late_rows"], book["good_rows"]
    good_left = Decimal("5000") - paid_principal(good, date(2026, 7, 2))
    assert july["month"] == "2026-07" and july["as_of"] == "2026-07-31"
    assert july["cumulative_lending"] == {"amount": Decimal("15000.00"), "count": 2}
    assert july["outstanding"] == {"amount": Decimal("10000.00") + good_left, "count": 2}
    interest = sum(Decimal(r.interest) for r in late) + sum(
        Decimal(r.interest) for r in good if r.due_date > date(2026, 7, 2))
    assert july["interest_outstanding"] == interest
    assert july["lenders"] == {"cumulative": 4, "current": 4}
    assert july["borrowers"] == {"cumulative": 2, "current": 2}
    assert july["per_person"]["lending_per_borrower"] == Decimal("7500.00")
    assert july["per_person"]["lent_per_lender"] == Decimal("3750.00")
    assert july["concentration"]["top10_borrowers"]["value"] == Decimal("1.0000")
    assert july["concentration"]["largest_lender"]["numerator"] == Decimal("5000.00")
    assert july["related_party"]["count"] == 0 and "register" in july["related_party"]["note"]
    # on 31 July: April's installment is 120 days past due, May's exactly 90 (not "over 90")
    assert july["overdue"] == {"amount": sum(owed(r) for r in late[:4]), "count": 1}
    assert july["overdue_90"] == {"amount": owed(late[0]), "count": 1}
    assert july["project_overdue_rate"]["numerator"] == 1
    assert july["project_overdue_rate"]["denominator"] == 2
    assert july["project_overdue_rate"]["value"] == Decimal("0.5000")
    assert july["amount_overdue_rate"]["numerator"] == Decimal("10000.00")
    assert july["amount_overdue_rate"]["denominator"] == Decimal("10000.00") + good_left
    fees = july["fees"]
    assert {p["product"] for p in fees["products"]} >= {"consumer", "car"}
    assert fees["protection_contribution_pct"] == Decimal("1.0")
    assert "金额逾期率" in july["definitions"]["amount_overdue_rate"]
