"""The managers' dashboards through the product's own app (create_app): Dash under /dashboards,
behind the staff session (managers and admins; agents refused, strangers sent to sign in), its
layout and callback endpoints behind the same guard, and a callback's figures computed from a
small history built through the services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bots.server import create_app
from bots.web.auth import STAFF
from dashboards.app import CSRF_COOKIE, CSRF_HEADER
from tests.integration.accounts_helpers import register
from tests.integration.console_helpers import FAST, HTML, sign_in, staff_member
from tests.support import make_core

JSON = {"Accept": "application/json"}
FILTERS = (("period", "start_date"), ("period", "end_date"), ("channels", "value"),
           ("campaigns", "value"))


@pytest.fixture
async def app(core):
    app = create_app(core, close_core=False, background=False)
    app[STAFF].hasher = FAST
    return app


@pytest.fixture
async def client(app, aiohttp_client):
    return await aiohttp_client(app)


async def signed_in(app, core, client, name: str, role: str) -> str:
    """A signed-in staff member of ``role``; the session's CSRF token."""
    await staff_member(app, core, name, role)
    return await sign_in(client, name)


def callback(output: str, values: dict[tuple[str, str], Any], *, live: bool = False
             ) -> dict[str, Any]:
    """The body Dash's renderer posts to ``_dash-update-component`` for a page's callback."""
    inputs = [{"id": i, "property": p, "value": values.get((i, p))} for i, p in FILTERS]
    if live:
        inputs.append({"id": "refresh", "property": "n_intervals", "value": 0})
    element, prop = output.split(".")
    return {"output": output, "outputs": {"id": element, "property": prop}, "inputs": inputs,
            "changedPropIds": [], "state": []}


def find(tree: Any, element_id: str) -> Any:
    """The component with ``element_id`` in a serialized Dash layout."""
    if isinstance(tree, dict):
        if tree.get("props", {}).get("id") == element_id:
            return tree
        children = tree.get("props", {}).get("children")
        return find(children, element_id) if children is not None else None
    if isinstance(tree, list):
        for item in tree:
            found = find(item, element_id)
            if found is not None:
                return found
    return None


def texts(tree: Any) -> list[str]:
    """Every text in a serialized Dash layout, in order."""
    if isinstance(tree, str):
        return [tree]
    if isinstance(tree, dict):
        return texts(tree.get("props", {}).get("children"))
    if isinstance(tree, list):
        return [t for item in tree for t in texts(item)]
    return []


async def test_a_manager_gets_the_dashboards_page_with_its_own_security_policy(app, core,
                                                                               client):
    csrf = await signed_in(app, core, client, "maria", "manager")
    response = await client.get("/dashboards/", headers=HTML)
    assert response.status == 200
    html = await response.text()
    assert 'id="_dash-config"' in html and "/dashboards/_dash-component-suites/" in html
    assert "/dashboards/assets/bootstrap.min.css" in html
    assert "cdn" not in html.lower()
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.cookies[CSRF_COOKIE].value == csrf
    layout = await client.get("/dashboards/_dash-layout", headers=JSON)
    assert layout.status == 200
    assert find(await layout.json(), "period") is not None
    redirect = await client.get("/dashboards", allow_redirects=False)
    assert (redirect.status, redirect.headers["Location"]) == (302, "/dashboards/")


async def test_an_admin_may_open_the_dashboards_too(app, core, client):
    await signed_in(app, core, client, "ada", "admin")
    assert (await client.get("/dashboards/", headers=HTML)).status == 200


async def test_an_agent_is_refused_the_page_the_layout_and_the_callbacks(app, core, client):
    csrf = await signed_in(app, core, client, "alice", "agent")
    page = await client.get("/dashboards/", headers=HTML)
    assert page.status == 403
    assert "Not allowed" in await page.text()
    assert (await client.get("/dashboards/_dash-layout", headers=JSON)).status == 403
    update = await client.post("/dashboards/_dash-update-component",
                               json=callback("overview-body.children", {}, live=True),
                               headers={CSRF_HEADER: csrf, **JSON})
    assert update.status == 403
    assert await update.json() == {"error": "role"}


async def test_a_stranger_is_sent_to_sign_in_and_the_endpoints_answer_401(client):
    page = await client.get("/dashboards/", headers=HTML, allow_redirects=False)
    assert page.status == 302
    assert page.headers["Location"] == "/login?next=%2Fdashboards%2F"
    assert (await client.get("/dashboards/_dash-layout", headers=JSON)).status == 401
    update = await client.post("/dashboards/_dash-update-component",
                               json=callback("overview-body.children", {}, live=True))
    assert update.status == 401


async def test_a_callback_without_the_sessions_csrf_token_is_refused(app, core, client):
    await signed_in(app, core, client, "maria", "manager")
    update = await client.post("/dashboards/_dash-update-component",
                               json=callback("overview-body.children", {}, live=True),
                               headers={CSRF_HEADER: "forged", **JSON})
    assert update.status == 403
    assert await update.json() == {"error": "csrf"}


async def test_the_overview_shows_the_new_users_of_the_period_next_to_the_previous(
        app, core, client):
    for campaign in ("spring", "spring", None):
        await register(core, channel="telegram", campaign=campaign)
    await register(core, channel="web")
    csrf = await signed_in(app, core, client, "maria", "manager")
    today = core.clock.today().isoformat()
    period = {("period", "start_date"): today, ("period", "end_date"): today}

    async def update(output: str, values: dict[tuple[str, str], Any], live: bool = False):
        response = await client.post("/dashboards/_dash-update-component",
                                     json=callback(output, values, live=live),
                                     headers={CSRF_HEADER: csrf, **JSON})
        assert response.status == 200, await response.text()
        element, prop = output.split(".")
        return (await response.json())["response"][element][prop]

    body = await update("overview-body.children", period, live=True)
    card = texts(find(body, "kpi-new-users"))
    assert card[:2] == ["New users (新注册)", "4"]
    assert "previous period: 0" in card
    spring = await update("overview-body.children",
                          {**period, ("campaigns", "value"): ["spring"]}, live=True)
    assert texts(find(spring, "kpi-new-users"))[1] == "2"

    traffic = await update("traffic-body.children", period)
    figure = find(traffic, "chart-new-users-by-channel")["props"]["figure"]
    by_channel = {trace["name"]: sum(trace["y"]) for trace in figure["data"]}
    assert by_channel == {"telegram": 3, "web": 1}


async def test_configured_campaign_spend_gives_the_cost_per_registration(
        database_url, clock, tmp_path, aiohttp_client):
    core = await make_core(database_url, clock, tmp_path,
                           marketing={"campaign_daily_spend": {"spring": "150.00"}})
    try:
        for campaign in ("spring", "spring", "spring", None):
            await register(core, channel="telegram", campaign=campaign)
        app = create_app(core, close_core=False, background=False)
        app[STAFF].hasher = FAST
        client = await aiohttp_client(app)
        csrf = await signed_in(app, core, client, "maria", "manager")
        start = (core.clock.today() - timedelta(days=1)).isoformat()  # two days: 300.00
        values = {("period", "start_date"): start,
                  ("period", "end_date"): core.clock.today().isoformat()}
        response = await client.post("/dashboards/_dash-update-component",
                                     json=callback("traffic-body.children", values),
                                     headers={CSRF_HEADER: csrf, **JSON})
        assert response.status == 200, await response.text()
        body = (await response.json())["response"]["traffic-body"]["children"]
        shown = texts(find(body, "table-campaign-quality"))
        spring = shown[shown.index("spring"):]
        assert "300.00" in spring[:12] and "100.00" in spring[:12]  # spend, per registration
    finally:
        await core.close()


async def test_live_pages_refresh_at_the_interval_of_the_setting(database_url, clock, tmp_path,
                                                                 aiohttp_client):
    core = await make_core(database_url, clock, tmp_path, dashboards={"refresh_seconds": 15})
    try:
        app = create_app(core, close_core=False, background=False)
        app[STAFF].hasher = FAST
        client = await aiohttp_client(app)
        csrf = await signed_in(app, core, client, "maria", "manager")
        response = await client.get("/dashboards/_dash-layout", headers=JSON)
        assert response.status == 200
        assert find(await response.json(), "refresh")["props"]["interval"] == 15_000

        async def page(path: str) -> Any:
            body = {"output": "page.children",
                    "outputs": {"id": "page", "property": "children"},
                    "inputs": [{"id": "url", "property": "pathname", "value": path}],
                    "changedPropIds": ["url.pathname"], "state": []}
            response = await client.post("/dashboards/_dash-update-component", json=body,
                                         headers={CSRF_HEADER: csrf, **JSON})
            assert response.status == 200, await response.text()
            return (await response.json())["response"]["page"]["children"]

        assert "Not found" in texts(await page("/dashboards/nowhere"))
    finally:
        await core.close()
