"""What channel adapters hand the engine, and what the engine hands back. No Telegram, no aiohttp.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Inbound:
    """One thing a user did in a chat: typed text, pressed a button, shared a contact, sent a
    file. ``message_id`` is the channel's own id, so a redelivery is recognised."""

    channel: str
    chat_id: str
    message_id: str
    text: str | None = None
    action: str | None = None  # a button's stable action id
    contact_phone: str | None = None  # a shared contact (already checked to be the sender's)
    attachment: bytes | None = None
    attachment_type: str | None = None
    display_name: str | None = None
    locale_hint: str | None = None  # Telegram language_code, the browser's language
    payload: str | None = None  # deep-link / UTM attribution: campaign, referral code


@dataclass(frozen=True, slots=True)
class Button:
    action: str  # stable id, at most 64 bytes (Telegram callback_data)
    label: str


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    buttons: tuple[Button, ...] = field(default_factory=tuple)
    sender: str = "bot"  # bot | agent | system
