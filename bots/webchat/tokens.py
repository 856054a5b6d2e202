"""Session tokens: which chat a browser may resume, signed so it cannot pick someone else's.

A token is ``v1.<chat id>.<issued at, unix seconds>.<signature>``; the signature is
HMAC-SHA256 over the rest under a key derived from ``settings.secret_key`` for this purpose
only. The chat id is random (96 bits), so it is never guessed; the signature makes a token
unforgeable, and the issue time lets it expire (``webchat.session_days``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

VERSION = "v1"
CHAT_ID = re.compile(r"[0-9a-f]{24}")
SKEW = timedelta(minutes=5)  # a token "from the future" this close is the clocks' fault


class SessionTokens:
    def __init__(self, secret_key: str, valid_for: timedelta) -> None:
        self._key = hmac.new(secret_key.encode(), b"p2p-desk webchat session v1",
                             hashlib.sha256).digest()
        self.valid_for = valid_for

    @staticmethod
    def new_chat_id() -> str:
        return secrets.token_hex(12)

    def issue(self, chat_id: str, now: datetime) -> str:
        body = f"{VERSION}.{chat_id}.{int(now.timestamp())}"
        return f"{body}.{self._sign(body)}"

    def chat_of(self, token: str | None, now: datetime) -> str | None:
        """The chat id a token stands for, or None when it is malformed, forged or expired."""
        if not token or len(token) > 200:
            return None
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != VERSION or not CHAT_ID.fullmatch(parts[1]) \
                or not parts[2].isdigit() or len(parts[2]) > 12:
            return None
        body = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3], self._sign(body)):
            return None
        issued = datetime.fromtimestamp(int(parts[2]), UTC)
        if issued > now + SKEW or now - issued > self.valid_for:
            return None
        return parts[1]

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
