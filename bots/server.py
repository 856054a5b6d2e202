"""The HTTP entrypoint: one aiohttp application that each adapter mounts its routes on.

``create_app(core)`` is the app factory (tests drive it through ``aiohttp_client``); the core's
resources are closed in the cleanup context when the server stops.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy import text

from core.bootstrap import Core

log = logging.getLogger(__name__)
CORE = web.AppKey("core", Core)


def create_app(core: Core, *, close_core: bool = True) -> web.Application:
    app = web.Application(client_max_size=6 * 1024 * 1024)
    app[CORE] = core
    app.router.add_get("/healthz", healthz)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        log.info("P2P Desk serving on the %s database", core.engine.dialect.name)
        yield
        if close_core:
            await core.close()

    app.cleanup_ctx.append(lifecycle)
    return app


async def healthz(request: web.Request) -> web.Response:
    """Liveness and readiness: 200 when the database answers, 503 when it does not."""
    core = request.app[CORE]
    try:
        async with core.uow(read_only=True) as uow:
            await uow.conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"
        log.warning("health check failed: %s", exc)
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    return web.json_response({"status": "ok", "database": core.engine.dialect.name})
