"""Serving the dashboards on the product's aiohttp server, to managers and admins only.

``setup_dashboards(app, core)`` (called by ``bots/server.py`` with the other staff pages) adds
``/dashboards/{path_info}``: a guard checks the staff session first (``bots/web/auth.py``:
``current_staff``), then ``aiohttp_wsgi`` runs the Dash (Flask) app in a small thread pool of
its own. The guard follows the rules of ``require``: no session -> a page request goes to
``/login?next=...``, anything else gets 401 JSON; a role other than manager or admin -> 403; a
request that is not GET/HEAD/OPTIONS (Dash's callbacks are POSTs) must carry the session's CSRF
token in ``X-CSRF-Token``, which Dash's renderer sends from the ``p2p_dash_csrf`` cookie set
with the page.

Headers are the staff pages' (``SECURITY_HEADERS``) except the content security policy: Dash
starts its renderer with one inline script (allowed by its hash) and plotly, Dash's components
and Bootstrap's icons need inline styles and data: images. Nothing is loaded from elsewhere.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from aiohttp import web
from aiohttp_wsgi import WSGIHandler
from dash import Dash

from bots.web.auth import (
    MANAGER_ROLES,
    SAFE_METHODS,
    SECURITY_HEADERS,
    current_staff,
    is_https,
    render,
)
from core.bootstrap import Core
from dashboards.app import CSRF_COOKIE, CSRF_HEADER, PREFIX, create_dash
from dashboards.bridge import Bridge

WORKERS = 4  # Dash requests at once; each waits for its query on the event loop
BRIDGE = web.AppKey("dashboards_bridge", Bridge)
DASH = web.AppKey("dashboards_dash", Dash)


def setup_dashboards(app: web.Application, core: Core) -> Dash:
    """Mount the dashboards under ``/dashboards/``; needs ``setup_auth`` (staff sessions)."""
    bridge = Bridge(core)
    dash = create_dash(core, bridge)
    executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dashboards")
    wsgi = WSGIHandler(dash.server, executor=executor)
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": policy(dash)}
    del headers["Cache-Control"]  # Dash's fingerprinted scripts are cacheable; the rest not

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        bridge.attach(asyncio.get_running_loop())
        yield
        bridge.detach()
        executor.shutdown(wait=False, cancel_futures=True)

    async def dashboards(request: web.Request) -> web.StreamResponse:
        """Dash's pages, scripts and callbacks, behind the staff session."""
        response = await guard(request, wsgi)
        response.headers.update(headers)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def to_root(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": PREFIX})

    app[BRIDGE], app[DASH] = bridge, dash
    app.cleanup_ctx.append(lifecycle)
    app.router.add_get(PREFIX.rstrip("/"), to_root)
    app.router.add_route("*", PREFIX + "{path_info:.*}", dashboards)
    return dash


async def guard(request: web.Request, wsgi: WSGIHandler) -> web.StreamResponse:
    """Dash's answer for a signed-in manager or admin; a redirect, 401 or 403 for anyone else."""
    found = await current_staff(request)
    if found is None:
        if _wants_page(request):
            return web.Response(status=302, headers={
                "Location": f"/login?next={quote(request.path_qs, safe='')}"})
        return web.json_response({"error": "login_required"}, status=401)
    member, csrf = found
    if request.method not in SAFE_METHODS and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, "").encode(), csrf.encode()):
        return _refused(request, "csrf")
    if member.role not in MANAGER_ROLES:
        return _refused(request, "role")
    response = await wsgi.handle_request(request)
    if response.content_type == "text/html":
        response.set_cookie(CSRF_COOKIE, csrf, path=PREFIX.rstrip("/"), samesite="Strict",
                            secure=is_https(request))
    return response


def policy(dash: Dash) -> str:
    scripts = " ".join(dash.csp_hashes())  # each one quoted already
    return ("default-src 'self'; "
            f"script-src 'self' {scripts}; "
            "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _wants_page(request: web.Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("Accept", "")


def _refused(request: web.Request, reason: str) -> web.StreamResponse:
    if _wants_page(request):
        return render(request, "forbidden.html", status=403, reason=reason)
    return web.json_response({"error": reason}, status=403)
