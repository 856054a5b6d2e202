"""Signing staff in to the product's own app in tests (the console, the review queues)."""

from __future__ import annotations

import re

from aiohttp import web
from argon2 import PasswordHasher

from bots.web.auth import STAFF

PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # tests need no real cost
HTML = {"Accept": "text/html"}


async def staff_member(app: web.Application, core, name: str, role: str = "agent",
                       display: str | None = None):
    async with core.uow() as uow:
        member = await app[STAFF].add(uow, name, PASSWORD, role, display or name.title())
        await uow.commit()
    return member


async def sign_in(client, name: str, page: str = "/console") -> str:
    """Sign in through the login form; return the session's CSRF token (read from ``page``)."""
    form = await client.get("/login")
    field = re.search(r'name="csrf_token" value="([^"]+)"', await form.text())
    assert field is not None
    response = await client.post("/login", data={"name": name, "password": PASSWORD,
                                                 "csrf_token": field.group(1), "next": ""},
                                 allow_redirects=False)
    assert response.status == 303
    text = await (await client.get(page, headers=HTML)).text()
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', text)
    assert found is not None
    return found.group(1)
