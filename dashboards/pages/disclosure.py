"""Disclosure: the monthly operating figures of the information-disclosure guidelines for a
chosen month (platform-wide: the filters do not apply), with the overdue rates' numerators,
denominators and definitions, and the fee standards; every table downloads as CSV."""

from __future__ import annotations

from datetime import date
from typing import Any

from dash import Dash, Input, Output, dcc, html

from core.analytics.disclosure import disclosure
from dashboards.bridge import Bridge
from dashboards.components import Column, kpi, kpis, note, page, section, table

PATH = "/disclosure"
NAME = "Disclosure"
BODY = "disclosure-body"
MONTHS = 24
AMOUNTS = (("cumulative_lending", "Cumulative lending (累计借贷金额及笔数)"),
           ("outstanding", "Outstanding (借贷余额及笔数)"),
           ("related_party", "Related-party lending (关联关系借款余额及笔数)"),
           ("overdue", "Overdue (逾期金额及笔数)"),
           ("overdue_90", "Overdue more than 90 days (逾期90天以上金额及笔数)"),
           ("compensation", "Cumulative compensation (累计代偿金额及笔数)"))
RATIOS = (("project_overdue_rate", "Project overdue rate (项目逾期率): loans"),
          ("amount_overdue_rate", "Amount overdue rate (金额逾期率): principal"))
CONCENTRATION = (("top10_borrowers", "10 largest borrowers (前十大借款人待还金额占比)"),
                 ("largest_borrower", "Largest borrower (最大单一借款人待还金额占比)"),
                 ("top10_lenders", "10 largest lenders (最大十户出借余额占比)"),
                 ("largest_lender", "Largest lender (最大单户出借余额占比)"))


def layout() -> html.Div:
    return page("Disclosure (信息披露)", BODY, html.Div([
        html.Label("Month (月份)", htmlFor="disclosure-month", className="form-label"),
        dcc.Dropdown(id="disclosure-month", clearable=False, searchable=False),
    ], className="month-picker mb-3"),
        note("Platform-wide by law: the channel and campaign filters and the period do not "
             "apply. Figures as of the month's last day (today for the month in progress)."))


def register(app: Dash, data: Bridge) -> None:
    @app.callback(Output("disclosure-month", "options"), Output("disclosure-month", "value"),
                  Input("disclosure-month", "id"))
    def months(_id: str) -> tuple[list[dict[str, str]], str]:
        """The last 24 months; the last complete one chosen."""
        choices = recent_months(data.today(), MONTHS)
        return ([{"label": m.strftime("%Y-%m"), "value": m.isoformat()} for m in choices],
                choices[1].isoformat())

    @app.callback(Output(BODY, "children"), Input("disclosure-month", "value"))
    def update(month: str | None) -> Any:
        """The month's disclosure figures."""
        if not month:
            return []
        chosen = date.fromisoformat(month)
        return render(data.read(lambda uow: disclosure(uow, chosen, settings=data.settings)),
                      data.settings.money.currency)


def recent_months(today: date, n: int) -> list[date]:
    """The first days of this month and the ``n - 1`` before it, newest first."""
    index = today.year * 12 + today.month - 1
    return [date((index - k) // 12, (index - k) % 12 + 1, 1) for k in range(n)]


def render(d: dict[str, Any], currency: str) -> list[Any]:
    defs = d["definitions"]
    amounts = [{"figure": label, "amount": d[key]["amount"], "count": d[key]["count"],
                "definition": defs[key]} for key, label in AMOUNTS]
    amounts.insert(2, {"figure": "Interest outstanding (利息余额)",
                       "amount": d["interest_outstanding"], "count": None,
                       "definition": defs["interest_outstanding"]})
    amounts.append({"figure": "Written off, not recovered", "amount": d["written_off"],
                    "count": None, "definition": defs["written_off"]})
    people = [
        {"figure": "Lenders, cumulative (累计出借人数)", "value": d["lenders"]["cumulative"]},
        {"figure": "Lenders, current (当前出借人数)", "value": d["lenders"]["current"]},
        {"figure": "Borrowers, cumulative (累计借款人数)", "value": d["borrowers"]["cumulative"]},
        {"figure": "Borrowers, current (当前借款人数)", "value": d["borrowers"]["current"]}]
    per_person = [
        {"figure": "Lending per borrower (人均累计借款金额)",
         "amount": d["per_person"]["lending_per_borrower"]},
        {"figure": "Lent per lender (人均累计出借金额)",
         "amount": d["per_person"]["lent_per_lender"]}]
    rates = [{"figure": label, **d[key]} for key, label in RATIOS]
    concentration = [{"figure": label, **d["concentration"][key]}
                     for key, label in CONCENTRATION]
    fees = d["fees"]
    fee_rows = [{"fee": f"Service fee: {p['name_en']} ({p['name_zh']})",
                 "value": f"{p['service_fee_pct']}%", "note": fees["notes"]["service_fee_pct"]}
                for p in fees["products"]]
    fee_rows += [{"fee": f"Management fee: {p['name_en']} ({p['name_zh']})",
                  "value": f"{p['management_fee_pct']}%",
                  "note": fees["notes"]["management_fee_pct"]} for p in fees["products"]]
    fee_rows += [{"fee": label, "value": f"{fees[key]}{unit}", "note": fees["notes"].get(key, "")}
                 for key, label, unit in (
                     ("protection_contribution_pct", "Protection contribution", "%"),
                     ("early_repayment_fee_pct", "Early repayment fee", "%"),
                     ("penalty_daily_pct", "Penalty interest per day", "%"),
                     ("penalty_cap_pct", "Penalty cap", "%"),
                     ("grace_days", "Grace period", " days"),
                     ("withdrawal_fee", "Withdrawal fee", f" {currency}"))]
    return [
        note(f"Month {d['month']}, as of {d['as_of']}."),
        kpis(kpi(f"Outstanding, {currency} (借贷余额)", d["outstanding"]["amount"],
                 kind="money", card_id="kpi-disclosure-outstanding"),
             kpi("Project overdue rate (项目逾期率)", d["project_overdue_rate"]["value"],
                 kind="percent"),
             kpi("Amount overdue rate (金额逾期率)", d["amount_overdue_rate"]["value"],
                 kind="percent"),
             kpi(f"Cumulative lending, {currency}", d["cumulative_lending"]["amount"],
                 kind="money")),
        section("Amounts and counts (金额及笔数)", table(f"disclosure-{d['month']}-amounts", [
            Column("figure", "Figure"), Column("amount", f"Amount, {currency}", "money"),
            Column("count", "Count", "count"), Column("definition", "Definition")], amounts)),
        note(d["related_party"]["note"]),
        section("Overdue rates (逾期率)", table(f"disclosure-{d['month']}-overdue-rates", [
            Column("figure", "Figure"), Column("numerator", "Numerator", "number"),
            Column("denominator", "Denominator", "number"), Column("value", "Rate", "percent"),
            Column("definition", "Definition")], rates)),
        section("People (人数)", table(f"disclosure-{d['month']}-people", [
            Column("figure", "Figure"), Column("value", "People", "count")], people),
            table(f"disclosure-{d['month']}-per-person", [
                Column("figure", "Figure"), Column("amount", f"Amount, {currency}", "money")],
                per_person), note(defs["per_person"])),
        section("Concentration (集中度)", table(f"disclosure-{d['month']}-concentration", [
            Column("figure", "Figure"), Column("numerator", "Numerator", "money"),
            Column("denominator", "Denominator", "money"), Column("value", "Share", "percent")],
            concentration), note(defs["concentration"])),
        section("Fee standards (收费标准)", table(f"disclosure-{d['month']}-fees", [
            Column("fee", "Fee"), Column("value", "Rate or amount"), Column("note", "Basis")],
            fee_rows)),
    ]
