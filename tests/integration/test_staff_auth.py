"""Staff accounts and the staff pages' security: logins, locks, sessions, roles, CSRF, headers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from argon2 import PasswordHasher
from sqlalchemy import select

from bots.web.auth import STAFF_MEMBER, render, require, setup_auth
from core.adapters.tables import audit_log, login_attempts, staff_sessions
from core.adapters.tables import staff as staff_table
from core.services.staff import (
    DuplicateStaffName,
    InvalidPresence,
    InvalidStaffName,
    LoginRefused,
    StaffService,
    UnknownRole,
    WeakPassword,
)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # tests need no real cost
HTML = {"Accept": "text/html,application/xhtml+xml"}


@require("agent", "manager", "admin")
async def agent_page(request: web.Request) -> web.StreamResponse:
    return render(request, "base.html")


@require("manager", "admin")
async def manager_page(request: web.Request) -> web.StreamResponse:
    return render(request, "base.html")


@require("manager", "admin")
async def manager_api(request: web.Request) -> web.StreamResponse:
    return web.json_response({"for": request[STAFF_MEMBER].name})


@require("agent", "manager", "admin")
async def save_note(request: web.Request) -> web.StreamResponse:
    return web.json_response({"saved": True})


@pytest.fixture
def staff(core) -> StaffService:
    return StaffService(core.settings.support, hasher=FAST)


@pytest.fixture
async def client(core, staff, aiohttp_client):
    app = web.Application()
    setup_auth(app, core, staff=staff)
    app.router.add_get("/console", agent_page)
    app.router.add_get("/manager/report", manager_page)
    app.router.add_get("/api/manager/stats", manager_api)
    app.router.add_post("/api/notes", save_note)
    return await aiohttp_client(app)


async def add(core, staff: StaffService, name: str, role: str = "agent", **kwargs):
    async with core.uow() as uow:
        member = await staff.add(uow, name, kwargs.pop("password", PASSWORD), role, **kwargs)
        await uow.commit()
    return member


async def service_login(core, staff: StaffService, name: str, password: str = PASSWORD,
                        ip: str = "10.0.0.1"):
    async with core.uow() as uow:
        result = await staff.login(uow, name, password, ip)
        await uow.commit()
    return result


async def sign_in(client, name: str, password: str = PASSWORD, *, next_path: str = "",
                  headers: dict[str, str] | None = None):
    form = await client.get("/login")
    field = re.search(r'name="csrf_token" value="([^"]+)"', await form.text())
    assert field is not None
    return await client.post("/login", data={
        "name": name, "password": password, "csrf_token": field.group(1), "next": next_path,
    }, headers=headers, allow_redirects=False)


def cookie_of(response, name: str) -> str:
    [cookie] = [c for c in response.headers.getall("Set-Cookie", []) if c.startswith(name + "=")]
    return cookie


async def csrf_of(client) -> str:
    page = await client.get("/console", headers=HTML)
    assert page.status == 200
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', await page.text())
    assert found is not None
    return found.group(1)


# Accounts -------------------------------------------------------------------------------------


async def test_staff_are_added_listed_and_disabled_with_every_change_audited(core, staff):
    alice = await add(core, staff, "alice", display_name="Alice W.")
    await add(core, staff, "bob.m", "manager")
    async with core.uow(read_only=True) as uow:
        members = await staff.list(uow)
        stored = (await uow.conn.execute(select(staff_table.c.password_hash))).scalars().all()
    assert [(m.name, m.display_name, m.role, m.active, m.presence) for m in members] == [
        ("alice", "Alice W.", "agent", True, "away"), ("bob.m", "bob.m", "manager", True, "away")]
    assert not hasattr(members[0], "password_hash")
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in stored)
    async with core.uow() as uow:
        await staff.disable(uow, "alice")
        await staff.set_presence(uow, alice.id, "online")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        assert (await staff.get(uow, "alice")).active is False
        actions = (await uow.conn.execute(
            select(audit_log.c.action).order_by(audit_log.c.id))).scalars().all()
    assert actions == ["staff_added", "staff_added", "staff_disabled"]


@pytest.mark.parametrize(("name", "password", "role", "error"), [
    ("alice", PASSWORD, "agent", DuplicateStaffName),
    ("Alice", PASSWORD, "agent", InvalidStaffName),
    ("a", PASSWORD, "agent", InvalidStaffName),
    ("carol", "short pw", "agent", WeakPassword),
    ("carol", PASSWORD, "superuser", UnknownRole),
])
async def test_an_account_is_refused_with_a_named_error(core, staff, name, password, role,
                                                        error):
    await add(core, staff, "alice")
    with pytest.raises(error):
        await add(core, staff, name, role, password=password)


async def test_presence_is_online_or_away(core, staff):
    alice = await add(core, staff, "alice")
    async with core.uow() as uow:
        with pytest.raises(InvalidPresence):
            await staff.set_presence(uow, alice.id, "busy")


async def test_an_outdated_hash_is_replaced_at_the_next_login(core, staff):
    await add(core, staff, "alice")
    stronger = StaffService(core.settings.support,
                            hasher=PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    await service_login(core, stronger, "alice")
    async with core.uow(read_only=True) as uow:
        stored = (await uow.conn.execute(select(staff_table.c.password_hash))).scalar_one()
    assert "m=16,t=2,p=1" in stored
    await service_login(core, staff, "alice")  # the old parameters still verify the new hash


# Logins and cookies ---------------------------------------------------------------------------


async def test_login_sets_an_http_only_same_site_cookie_and_goes_to_next(core, staff, client):
    await add(core, staff, "alice", display_name="Alice")
    response = await sign_in(client, "alice", next_path="/console?tab=queue")
    assert response.status == 303
    assert response.headers["Location"] == "/console?tab=queue"
    cookie = cookie_of(response, "p2p_staff").lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie
    me = await client.get("/staff/me")
    assert await me.json() == {"name": "alice", "display_name": "Alice", "role": "agent",
                               "presence": "away"}
    page = await (await client.get("/console", headers=HTML)).text()
    assert "Alice (alice) · agent" in page and 'action="/logout"' in page
    async with core.uow(read_only=True) as uow:
        stored = (await uow.conn.execute(select(staff_sessions.c.token_hash))).scalar_one()
    token = cookie_of(response, "p2p_staff").split(";")[0].split("=", 1)[1]
    assert stored != token and len(stored) == 64  # only the token's hash is kept


async def test_the_session_cookie_is_secure_behind_an_https_proxy(core, staff, client):
    await add(core, staff, "alice")
    response = await sign_in(client, "alice", headers={"X-Forwarded-Proto": "https"})
    assert response.status == 303
    assert "secure" in cookie_of(response, "p2p_staff").lower()


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil",
                                    "javascript:alert(1)", ""])
async def test_login_never_redirects_off_the_site(core, staff, client, target):
    await add(core, staff, "alice")
    response = await sign_in(client, "alice", next_path=target)
    assert response.headers["Location"] == "/console"


async def test_a_wrong_password_shows_the_same_refusal_as_an_unknown_name(core, staff, client):
    await add(core, staff, "alice")
    wrong = await sign_in(client, "alice", "not the password")
    unknown = await sign_in(client, "nobody", PASSWORD)
    assert wrong.status == unknown.status == 401
    assert "Wrong name or password." in await wrong.text()
    assert "Wrong name or password." in await unknown.text()
    assert "p2p_staff" not in client.session.cookie_jar.filter_cookies(client.make_url("/"))


async def test_a_cross_site_login_post_without_the_login_csrf_pair_is_refused(core, staff,
                                                                               client):
    await add(core, staff, "alice")
    form = await client.get("/login")
    field = re.search(r'name="csrf_token" value="([^"]+)"', await form.text()).group(1)
    client.session.cookie_jar.clear()  # another site's form: the SameSite cookie is not sent
    for data in ({"name": "alice", "password": PASSWORD},
                 {"name": "alice", "password": PASSWORD, "csrf_token": field}):
        refused = await client.post("/login", data=data, allow_redirects=False)
        assert refused.status == 403
        assert "p2p_staff" not in refused.headers.get("Set-Cookie", "")
    await client.get("/login")  # a fresh cookie, but a field made up by the attacker
    forged = await client.post("/login", data={"name": "alice", "password": PASSWORD,
                                                "csrf_token": "0" * 64}, allow_redirects=False)
    assert forged.status == 403
    async with core.uow(read_only=True) as uow:
        assert (await uow.conn.execute(select(login_attempts))).first() is None


async def test_staff_pages_carry_strict_security_headers(core, staff, client):
    await add(core, staff, "alice")
    for response in (await client.get("/login"), await client.get("/api/manager/stats")):
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    login_cookie = cookie_of(await client.get("/login"), "p2p_login_csrf").lower()
    assert "httponly" in login_cookie and "samesite=strict" in login_cookie


# Roles and CSRF -------------------------------------------------------------------------------


async def test_without_a_session_a_page_redirects_to_login_and_an_api_answers_401(client):
    page = await client.get("/console?tab=queue", headers=HTML, allow_redirects=False)
    assert page.status == 302
    assert page.headers["Location"] == "/login?next=%2Fconsole%3Ftab%3Dqueue"
    api = await client.get("/api/manager/stats", headers=HTML)
    assert api.status == 401 and (await api.json())["error"] == "login_required"
    post = await client.post("/api/notes", json={"text": "hi"})
    assert post.status == 401


async def test_each_route_admits_only_the_roles_it_lists(core, staff, client):
    await add(core, staff, "alice")
    await add(core, staff, "mo", "manager")
    await sign_in(client, "alice")
    api = await client.get("/api/manager/stats")
    assert api.status == 403 and (await api.json())["error"] == "role"
    page = await client.get("/manager/report", headers=HTML)
    assert page.status == 403 and "Not allowed" in await page.text()
    assert (await client.get("/console", headers=HTML)).status == 200
    client.session.cookie_jar.clear()  # another browser
    await sign_in(client, "mo")
    assert await (await client.get("/api/manager/stats")).json() == {"for": "mo"}


async def test_a_state_changing_request_needs_the_sessions_csrf_token(core, staff, client):
    await add(core, staff, "alice")
    await sign_in(client, "alice")
    csrf = await csrf_of(client)
    assert (await client.post("/api/notes", json={"text": "hi"})).status == 403
    wrong = await client.post("/api/notes", json={}, headers={"X-CSRF-Token": "x" + csrf})
    assert wrong.status == 403 and (await wrong.json())["error"] == "csrf"
    by_header = await client.post("/api/notes", json={}, headers={"X-CSRF-Token": csrf})
    by_form = await client.post("/api/notes", data={"csrf_token": csrf, "text": "hi"})
    assert by_header.status == by_form.status == 200


# Locks ----------------------------------------------------------------------------------------


async def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(core, staff, clock):
    await add(core, staff, "alice")
    for attempt in range(5):  # from different addresses: the account itself locks
        with pytest.raises(LoginRefused) as refused:
            await service_login(core, staff, "alice", "wrong password", ip=f"10.0.1.{attempt}")
    assert refused.value.params["locked_until"] == clock.now() + timedelta(minutes=15)
    with pytest.raises(LoginRefused) as locked:
        await service_login(core, staff, "alice", ip="10.0.2.1")
    assert locked.value.params["locked_until"] == clock.now() + timedelta(minutes=15)
    clock.advance(timedelta(minutes=14, seconds=59))
    with pytest.raises(LoginRefused):
        await service_login(core, staff, "alice", ip="10.0.2.2")
    clock.advance(timedelta(seconds=1))
    member, _token, _csrf = await service_login(core, staff, "alice", ip="10.0.2.3")
    assert member.last_login_at == clock.now()
    async with core.uow(read_only=True) as uow:
        attempts = (await uow.conn.execute(select(login_attempts.c.succeeded)
                                           .order_by(login_attempts.c.id))).scalars().all()
        failures = (await uow.conn.execute(select(audit_log.c.details).where(
            audit_log.c.action == "staff_login_failed"))).scalars().all()
    assert attempts == [False] * 7 + [True]
    assert [f["reason"] for f in failures] == ["wrong_password"] * 5 + ["locked"] * 2


async def test_five_failures_from_one_address_lock_it_whatever_the_name(core, staff, client,
                                                                       clock):
    await add(core, staff, "alice")
    for name in ("root", "admin", "alice", "bob", "carol"):
        assert (await sign_in(client, name, "guess guess guess")).status == 401
    blocked = await sign_in(client, "alice")
    assert blocked.status == 401 and "Too many failed attempts" in await blocked.text()
    member, _token, _csrf = await service_login(core, staff, "alice", ip="10.9.9.9")
    assert member.name == "alice"  # the account itself is not locked, only that address
    clock.advance(timedelta(minutes=15))
    assert (await sign_in(client, "alice")).status == 303


async def test_an_unknown_name_locks_like_an_account_so_locks_reveal_no_names(core, staff,
                                                                             clock):
    for attempt in range(5):
        with pytest.raises(LoginRefused):
            await service_login(core, staff, "ghost", "guess guess", ip=f"10.0.3.{attempt}")
    with pytest.raises(LoginRefused) as refused:
        await service_login(core, staff, "ghost", "guess guess", ip="10.0.4.1")
    assert refused.value.params["locked_until"] == clock.now() + timedelta(minutes=15)


# Sessions -------------------------------------------------------------------------------------


async def test_logout_revokes_the_session_on_the_server(core, staff, client):
    await add(core, staff, "alice")
    response = await sign_in(client, "alice")
    token = cookie_of(response, "p2p_staff").split(";")[0].split("=", 1)[1]
    csrf = await csrf_of(client)
    assert (await client.post("/logout", allow_redirects=False)).status == 403  # no CSRF token
    out = await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/login"
    replayed = await client.get("/staff/me", headers={"Cookie": f"p2p_staff={token}"})
    assert replayed.status == 401


async def test_a_session_ends_after_thirty_idle_minutes_but_not_while_in_use(core, staff,
                                                                            client, clock):
    await add(core, staff, "alice")
    await sign_in(client, "alice")
    for _ in range(3):
        clock.advance(timedelta(minutes=20))
        assert (await client.get("/console", headers=HTML)).status == 200
    clock.advance(timedelta(minutes=31))
    idle = await client.get("/console", headers=HTML, allow_redirects=False)
    assert idle.status == 302 and idle.headers["Location"] == "/login?next=%2Fconsole"
    async with core.uow(read_only=True) as uow:
        revoked = (await uow.conn.execute(select(staff_sessions.c.revoked_at))).scalar_one()
    assert revoked == clock.now()


async def test_a_disabled_account_cannot_log_in_and_its_sessions_stop(core, staff, client):
    await add(core, staff, "alice")
    await sign_in(client, "alice")
    assert (await client.get("/staff/me")).status == 200
    async with core.uow() as uow:
        await staff.disable(uow, "alice")
        await uow.commit()
    assert (await client.get("/staff/me")).status == 401
    again = await sign_in(client, "alice")
    assert again.status == 401 and "Wrong name or password." in await again.text()


# Command line ---------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd,
                          env=dict(os.environ), input=stdin, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_staff_command_adds_lists_and_disables_accounts(tmp_path):
    added = run_cli("staff", "add", "alice", "--role", "manager", "--display-name", "Alice",
                    cwd=tmp_path, stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    weak = run_cli("staff", "add", "bob", "--role", "agent", cwd=tmp_path, stdin="short\n")
    assert weak.returncode == 1 and "at least 10 characters" in weak.stderr
    listed = run_cli("staff", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "alice\tAlice\tmanager\tyes\taway" in listed.stdout
    assert "bob" not in listed.stdout and "argon2" not in listed.stdout
    assert run_cli("staff", "disable", "alice", cwd=tmp_path).returncode == 0
    assert "alice\tAlice\tmanager\tno\taway" in run_cli("staff", "list", cwd=tmp_path).stdout
    unknown = run_cli("staff", "disable", "nobody", cwd=tmp_path)
    assert unknown.returncode == 1 and "nobody" in unknown.stderr


async def test_a_session_seen_within_a_minute_is_read_without_writing(core, staff, client,
                                                                      clock):
    await add(core, staff, "alice")
    await sign_in(client, "alice")

    async def last_seen():
        async with core.uow(read_only=True) as uow:
            return (await uow.conn.execute(select(staff_sessions.c.last_seen_at))).scalar_one()

    signed_in = await last_seen()
    clock.advance(timedelta(seconds=30))
    assert (await client.get("/staff/me")).status == 200
    assert await last_seen() == signed_in  # no write for a request within the minute
    clock.advance(timedelta(seconds=45))
    assert (await client.get("/staff/me")).status == 200
    assert await last_seen() == signed_in + timedelta(seconds=75)
