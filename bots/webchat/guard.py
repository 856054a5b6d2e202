"""Abuse limits of the web chat: a token bucket per session, open sockets per IP address, and
the WebSocket's ``Origin`` check. All of it is per process (several ``serve`` processes each
apply the limits to what they see)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

MAX_BUCKETS = 10_000  # beyond this, full (idle) buckets are forgotten


@dataclass
class TokenBucket:
    """``rate`` tokens a second up to ``burst``; a message takes one."""

    rate: float
    burst: float
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.at) * self.rate >= self.burst


@dataclass
class SessionRates:
    """One bucket per chat session, shared by its tabs and its uploads, kept across reconnects
    (a client cannot reset its limit by reconnecting)."""

    per_second: float
    monotonic: Callable[[], float] = time.monotonic
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def allow(self, chat_id: str) -> bool:
        now = self.monotonic()
        bucket = self.buckets.get(chat_id)
        if bucket is None:
            if len(self.buckets) >= MAX_BUCKETS:
                self.buckets = {k: b for k, b in self.buckets.items() if not b.full(now)}
            burst = 2 * self.per_second
            bucket = self.buckets[chat_id] = TokenBucket(self.per_second, burst, burst, now)
        return bucket.take(now)


@dataclass
class ConnectionsPerIp:
    """Open WebSockets by the client's address (``request.remote``)."""

    limit: int
    open: dict[str, int] = field(default_factory=dict)

    def acquire(self, ip: str) -> bool:
        if self.open.get(ip, 0) >= self.limit:
            return False
        self.open[ip] = self.open.get(ip, 0) + 1
        return True

    def release(self, ip: str) -> None:
        left = self.open.get(ip, 0) - 1
        if left > 0:
            self.open[ip] = left
        else:
            self.open.pop(ip, None)


def own_origin(request: web.Request) -> str:
    """``scheme://host[:port]`` the browser used to reach us. Behind a proxy that terminates
    TLS or rewrites the host, the proxy's ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` win
    (the first value of each); a web page cannot set these on a WebSocket handshake."""
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    return _normal(f"{proto or request.scheme}://{host or request.host}")


def origin_allowed(request: web.Request, allowed: list[str]) -> bool:
    """A browser's handshake carries ``Origin``: it must be listed in ``webchat.allowed_origins``
    or, when that list is empty, be our own origin. A handshake without ``Origin`` is not
    from a browser page (docs/webchat.md explains why it is let through)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if allowed:
        return _normal(origin) in {_normal(o) for o in allowed}
    return _normal(origin) == own_origin(request)


def _normal(origin: str) -> str:
    """Lower-case scheme and host, default ports dropped: ``HTTPS://Chat.Example:443`` ->
    ``https://chat.example``. Anything unparsable (``null``) compares as itself."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return origin
    if not parts.scheme or not parts.hostname:
        return origin
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")
