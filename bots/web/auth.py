"""Staff sign-in for every staff page: login and logout, sessions, roles, CSRF, security headers.

Cookies (HttpOnly, SameSite=Strict, Secure when the request came over HTTPS):

* ``p2p_staff`` (Path=/): the session token; the server keeps only its SHA-256
  (``core/services/staff.py``), with the session's CSRF token.
* ``p2p_login_csrf`` (Path=/login): a random value set with the login form, whose hidden field
  carries the value's HMAC under the server's secret (a signed double submit). A login posted
  from another site comes without the cookie and cannot forge the field, so it is refused.

Each handler lists the roles allowed, explicitly: ``@require("agent", "manager", "admin")``.
Without a live session a page (a GET asking for HTML, outside ``/api/``) redirects to
``/login?next=<path>``; anything else gets 401 JSON. A role not listed gets 403 (a page or JSON).
A state-changing request must carry the session's CSRF token as the form field ``csrf_token`` or
the header ``X-CSRF-Token`` (pages put it in ``<meta name="csrf-token">`` for scripts), else 403.
Staff responses get strict security headers; the policy forbids inline scripts and styles, so
JavaScript and CSS go in files.

Handlers find the signed-in member in ``request[STAFF_MEMBER]`` and the CSRF token in
``request[CSRF_TOKEN]``; ``render`` passes both to templates (``staff``, ``csrf_token``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import web

from core.bootstrap import Core
from core.services.staff import ROLES, LoginRefused, Staff, StaffService

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "p2p_staff"
LOGIN_CSRF_COOKIE = "p2p_login_csrf"
DEFAULT_NEXT = "/console"
TEMPLATE_DIR = Path(__file__).with_name("templates")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
AGENT_ROLES = ("agent", "manager", "admin")
MANAGER_ROLES = ("manager", "admin")
ADMIN_ROLES = ("admin",)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

STAFF = web.AppKey("staff", StaffService)
TEMPLATES = web.AppKey("staff_templates", jinja2.Environment)
STAFF_MEMBER = web.RequestKey("staff_member", Staff)
CSRF_TOKEN = web.RequestKey("csrf_token", str)
_CORE = web.AppKey("staff_core", Core)
_LOGIN_KEY = web.AppKey("staff_login_key", bytes)
_STAFF_PAGE = web.RequestKey("staff_page", bool)


def setup_auth(app: web.Application, core: Core, *,
               staff: StaffService | None = None) -> StaffService:
    """Mount the sign-in routes and the security-header middleware; call before start-up."""
    service = staff or StaffService(core.settings.support)
    if core.settings.secret_key is None:
        raise ValueError("setup_auth needs settings.secret_key (config.secrets.ensure_secrets)")
    app[STAFF] = service
    app[_CORE] = core
    app[TEMPLATES] = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
                                        autoescape=True, trim_blocks=True, lstrip_blocks=True)
    app[_LOGIN_KEY] = hmac.new(core.settings.secret_key.get_secret_value().encode(),
                               b"staff-login-csrf", hashlib.sha256).digest()
    app.middlewares.append(security_headers)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/staff/me", me)
    return service


def require(*roles: str) -> Callable[[Handler], Handler]:
    """Let only a signed-in member with one of ``roles`` in (and check CSRF on writes)."""
    if not roles or not set(roles) <= set(ROLES):
        raise ValueError(f"roles must be among {ROLES}, got {roles}")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            request[_STAFF_PAGE] = True
            found = await current_staff(request)
            if found is None:
                return _login_required(request)
            member, csrf = found
            if request.method not in SAFE_METHODS and not await _csrf_matches(request, csrf):
                return _refused(request, "csrf")
            if member.role not in roles:
                return _refused(request, "role")
            return await handler(request)

        return guarded

    return decorate


async def current_staff(request: web.Request) -> tuple[Staff, str] | None:
    """The signed-in member and CSRF token of this request (looked up once), or None."""
    if STAFF_MEMBER in request:
        return request[STAFF_MEMBER], request[CSRF_TOKEN]
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 128:
        return None
    core, service = request.app[_CORE], request.app[STAFF]
    async with core.uow(read_only=True) as uow:
        found = await service.peek(uow, token)
    if found is True:  # seen more than a minute ago: refresh it, or revoke it when idle
        async with core.uow() as uow:
            found = await service.session(uow, token, request.remote or "unknown")
            await uow.commit()
    if found is not None:
        request[STAFF_MEMBER], request[CSRF_TOKEN] = found
    return found


def render(request: web.Request, template: str, *, status: int = 200,
           **context: Any) -> web.Response:
    """A staff page from ``bots/web/templates`` (autoescaped), with ``staff`` and
    ``csrf_token`` of the signed-in member."""
    context.setdefault("staff", request.get(STAFF_MEMBER))
    context.setdefault("csrf_token", request.get(CSRF_TOKEN))
    html = request.app[TEMPLATES].get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html")


def is_https(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


# Routes -------------------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in form with a fresh login CSRF pair; a signed-in member goes on to ``next``."""
    request[_STAFF_PAGE] = True
    target = _local_path(request.query.get("next"))
    if await current_staff(request) is not None:
        return _redirect(target, status=302)
    return _login_page(request, target, secrets.token_urlsafe(32))


async def login(request: web.Request) -> web.StreamResponse:
    """Check the login CSRF pair and the password; open a session and go on to ``next``."""
    request[_STAFF_PAGE] = True
    form = await request.post()
    target = _local_path(_text(form.get("next")))
    pair = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not pair or not hmac.compare_digest(_text(form.get("csrf_token")).encode(),
                                           _sign(request, pair).encode()):
        return _login_page(request, target, secrets.token_urlsafe(32), status=403,
                           error="expired")
    name = _text(form.get("name"))
    core = request.app[_CORE]
    try:
        async with core.uow() as uow:
            _member, token, _csrf = await request.app[STAFF].login(
                uow, name, _text(form.get("password")), request.remote or "unknown")
            await uow.commit()
    except LoginRefused as refused:
        until = refused.params.get("locked_until")
        return _login_page(request, target, pair, status=401, error="refused", name=name,
                           locked_until=None if until is None else core.clock.local(until))
    response = _redirect(target)
    _set_cookie(request, response, SESSION_COOKIE, token, path="/")
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login", secure=is_https(request),
                        httponly=True, samesite="Strict")
    return response


@require(*AGENT_ROLES)
async def logout(request: web.Request) -> web.StreamResponse:
    """End this browser's session."""
    async with request.app[_CORE].uow() as uow:
        await request.app[STAFF].logout(uow, request.cookies[SESSION_COOKIE])
        await uow.commit()
    response = _redirect("/login")
    response.del_cookie(SESSION_COOKIE, path="/", secure=is_https(request), httponly=True,
                        samesite="Strict")
    return response


@require(*AGENT_ROLES)
async def me(request: web.Request) -> web.StreamResponse:
    """Who is signed in (for scripts and tests)."""
    member = request[STAFF_MEMBER]
    return web.json_response({"name": member.name, "display_name": member.display_name,
                              "role": member.role, "presence": member.presence})


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Strict headers on every response of a staff handler, errors included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if request.get(_STAFF_PAGE):
            exc.headers.update(SECURITY_HEADERS)
        raise
    if request.get(_STAFF_PAGE) and not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


# Helpers ------------------------------------------------------------------------------------


def _wants_page(request: web.Request) -> bool:
    return (request.method in ("GET", "HEAD") and not request.path.startswith("/api/")
            and "text/html" in request.headers.get("Accept", ""))


def _login_required(request: web.Request) -> web.StreamResponse:
    if _wants_page(request):
        return _redirect(f"/login?next={quote(request.path_qs, safe='')}", status=302)
    return web.json_response({"error": "login_required"}, status=401)


def _refused(request: web.Request, reason: str) -> web.StreamResponse:
    if _wants_page(request):
        return render(request, "forbidden.html", status=403, reason=reason)
    return web.json_response({"error": reason}, status=403)


async def _csrf_matches(request: web.Request, csrf: str) -> bool:
    sent: Any = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type in FORM_TYPES:
        sent = (await request.post()).get("csrf_token")  # cached: the handler reads it again
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), csrf.encode())


def _login_page(request: web.Request, target: str, pair: str, *, status: int = 200,
                **context: Any) -> web.Response:
    response = render(request, "login.html", status=status, next=target,
                      login_csrf=_sign(request, pair), **context)
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, pair, path="/login")
    return response


def _sign(request: web.Request, value: str) -> str:
    return hmac.new(request.app[_LOGIN_KEY], value.encode(), hashlib.sha256).hexdigest()


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, *,
                path: str) -> None:
    response.set_cookie(name, value, path=path, httponly=True, samesite="Strict",
                        secure=is_https(request))


def _redirect(location: str, *, status: int = 303) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def _local_path(value: str | None) -> str:
    """``value`` when it is a path on this site, else the console (no open redirects)."""
    if (not value or not value.startswith("/") or value.startswith("//") or "\\" in value
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)):
        return DEFAULT_NEXT
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else DEFAULT_NEXT


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
