"""The managers' dashboards in a real browser, over a demo history made by the simulator: a
manager opens every page from the nav bar; each page's charts are drawn with data, its KPI
cards show figures, a table downloads as CSV, and the browser reports no error (the pages run
under their content security policy). An agent is refused."""

from __future__ import annotations

import pytest

from bots.dialog.simulated import EngineChat
from core.simulator import simulate
from tests.browser.conftest import screenshot, sign_in

pytestmark = pytest.mark.browser

# (nav-bar name, the element the page's callback fills, a KPI card that must show a figure,
# whether the page has charts)
PAGES = (("Overview", "overview-body", "kpi-new-users", False),
         ("Traffic", "traffic-body", "kpi-visits", True),
         ("Conversion", "conversion-body", "kpi-visitors", True),
         ("Activity", "activity-body", "kpi-active-users", True),
         ("Overdue & collections", "credit-body", "kpi-outstanding", True),
         ("Support", "support-body", "kpi-contacts", True),
         ("Marketing", "marketing-body", "kpi-broadcasts", True),
         ("Disclosure", "disclosure-body", "kpi-disclosure-outstanding", False))
DRAWN = """(body) => Array.from(document.querySelectorAll(`#${body} [id^="chart-"]`)).map(
    (graph) => {
        const plot = graph.querySelector('.js-plotly-plot');
        return {id: graph.id, points: plot && plot.data ? plot.data.map(
            (t) => ['x', 'y', 'z', 'values'].map((k) => (t[k] || []).length)
                .reduce((a, b) => Math.max(a, b), 0)) : null};
    })"""
FILLED = """(body) => {
    const el = document.getElementById(body);
    if (!el || !el.children.length) return false;
    const graphs = el.querySelectorAll('[id^="chart-"]');
    return Array.from(graphs).every((g) => {
        const plot = g.querySelector('.js-plotly-plot');
        return plot && plot.data;
    });
}"""


async def demo_history(core) -> None:
    """Sixty days of a platform with about 120 users, made through the services."""
    await simulate(core, users=120, days=60, seed=7, chat=EngineChat(core))


@pytest.fixture
async def history(core):
    await demo_history(core)


async def test_a_manager_sees_every_dashboard_drawn_with_data(core, history, site, browser,
                                                              tmp_path):
    await site.staff(core, "maria", "manager", display="Maria")
    context = await browser.new_context(accept_downloads=True)
    page = await sign_in(context, site, "maria")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error"
            else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

    await page.goto(f"{site.url}/dashboards/")
    for name, body, card, charts in PAGES:
        await page.locator(".navbar .nav-link", has_text=name).first.click()
        await page.wait_for_function(FILLED, arg=body, timeout=30_000)
        await page.wait_for_load_state("networkidle")
        drawn = await page.evaluate(DRAWN, body)
        assert bool(drawn) == charts, f"{name}: charts {drawn}"
        for graph in drawn:
            assert graph["points"] and all(graph["points"]), f"{name}: {graph}"
        values = await page.locator(f"#{body} .kpi-value").all_inner_texts()
        assert values, f"{name}: no KPI cards"
        if card is not None:
            shown = await page.locator(f"#{card} .kpi-value").inner_text()
            assert shown not in ("", "—"), f"{name}: {card} shows {shown!r}"
        await screenshot(page, f"dashboards-{body.removesuffix('-body')}")

    async with page.expect_download() as waiting:
        await page.locator("#disclosure-body button", has_text="Download CSV").first.click()
    download = await waiting.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert saved.read_text(encoding="utf-8").startswith("Figure,Amount, CNY,Count,Definition") \
        or saved.read_text(encoding="utf-8").startswith('Figure,"Amount, CNY",Count,Definition')
    assert errors == []
    await context.close()


async def test_an_agent_is_refused_the_dashboards(core, site, browser):
    await site.staff(core, "alice", "agent")
    context = await browser.new_context()
    page = await sign_in(context, site, "alice")
    response = await page.goto(f"{site.url}/dashboards/")
    assert response is not None and response.status == 403
    assert "Not allowed" in await page.locator("h1").inner_text()
    await context.close()
