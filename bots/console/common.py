"""Small helpers the staff pages share (review queues, notices and broadcasts)."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from aiohttp import web

from core.bootstrap import Core


def json_reply(data: Any, status: int = 200) -> web.Response:
    """JSON with dates, decimals and the like as their text."""
    return web.json_response(data, status=status,
                             dumps=functools.partial(json.dumps, default=str))


def wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def local_minutes(core: Core, moment: datetime | None) -> str | None:
    """A stored UTC moment as business-time ``YYYY-MM-DDTHH:MM``."""
    return None if moment is None else core.clock.local(moment).isoformat(timespec="minutes")
