"""The web chat's wire format (docs/webchat.md): what a browser may send, what we send back.
Pure functions, no I/O: parsing client frames, rendering replies and stored messages, reading
attribution and the language from the URL."""

from __future__ import annotations

import json
import re
import tomllib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bots.dialog.i18n import normalize_locale
from bots.dialog.types import Button, Reply

ACTION = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII, like the engine's button ids
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
PAYLOAD_JUNK = re.compile(r"[^A-Za-z0-9_-]+")
LANG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})?")
# Buttons a browser cannot honour: sharing the phone's own contact is Telegram's; the text
# asking for the number already says it can be typed.
UNSUPPORTED_BUTTONS = frozenset({"contact:request"})
ERRORS_FILE = Path(__file__).with_name("errors.toml")


class ProtocolError(Exception):
    """A frame refused before it reaches the engine; ``code`` is the error frame's code."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass(frozen=True, slots=True)
class Said:
    """One client frame: typed text or a pressed button, with the client's own message id."""

    text: str | None = None
    action: str | None = None
    client_id: str | None = None

    def message_id(self, chat_id: str) -> str:
        """The inbound's id: a client id is scoped to its chat (a resend is answered once);
        without one every frame is new."""
        return f"{chat_id}:{self.client_id}" if self.client_id else uuid.uuid4().hex


def parse_frame(data: str, max_chars: int) -> Said | None:
    """A client frame; None for one that asks nothing (blank text)."""
    try:
        frame = json.loads(data)
    except ValueError:
        raise ProtocolError("bad_request") from None
    if not isinstance(frame, dict):
        raise ProtocolError("bad_request")
    if frame.get("type") == "message":
        client_id = frame.get("id")
        if client_id is not None and not (isinstance(client_id, str | int)
                                          and CLIENT_ID.fullmatch(str(client_id))):
            raise ProtocolError("bad_request")
        client_id = None if client_id is None else str(client_id)
        text = frame.get("text")
        if not isinstance(text, str):
            raise ProtocolError("bad_request")
        if len(text) > max_chars:
            raise ProtocolError("too_long", limit=max_chars)
        return Said(text=text, client_id=client_id) if text.strip() else None
    if frame.get("type") == "action":  # here "id" is the button's
        action = frame.get("id")
        if not isinstance(action, str) or not ACTION.fullmatch(action):
            raise ProtocolError("bad_request")
        return Said(action=action)
    raise ProtocolError("bad_request")


def message_frame(sender: str, text: str, at: datetime | str, *,
                  buttons: Iterable[Mapping[str, str]] = (), name: str | None = None,
                  message_id: int | None = None, client_id: str | None = None
                  ) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "message", "from": sender, "name": name, "text": text,
        "buttons": [{"id": b["id"], "label": b["label"]} for b in buttons
                    if b["id"] not in UNSUPPORTED_BUTTONS],
        "at": at if isinstance(at, str) else at.isoformat(), "id": message_id}
    if client_id is not None:
        frame["client_id"] = client_id
    return frame


def reply_frames(replies: Iterable[Reply], at: datetime) -> list[dict[str, Any]]:
    return [message_frame(r.sender, r.text, at,
                          buttons=[{"id": b.action, "label": b.label} for b in r.buttons])
            for r in replies]


def history_frames(rows: Iterable[Any], menu: Iterable[Button] = ()) -> list[dict[str, Any]]:
    """``chat_messages`` rows, oldest first, as message frames. A pressed button is stored as
    ``[<id>]``; it reads as the label it had (the first menu is not stored: ``menu``). An
    agent's message carries the agent's display name (``author``)."""
    labels = {button.action: button.label for button in menu}
    frames = []
    for row in rows:
        text = row.text
        if row.sender == "user" and text.startswith("[") and text.endswith("]"):
            text = labels.get(text[1:-1], text)
        for button in row.buttons or ():
            labels[button["id"]] = button["label"]
        frames.append(message_frame(row.sender, text, row.at, buttons=row.buttons or (),
                                    name=getattr(row, "author", None),
                                    message_id=int(row.id)))
    return frames


def live_frame(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A message the agent desk published on ``conversation:<id>``; None if malformed."""
    try:
        return message_frame(str(message["from"]), str(message["text"]), str(message["at"]),
                             buttons=message.get("buttons") or (), name=message.get("name"),
                             message_id=message.get("id"))
    except (KeyError, TypeError):
        return None


def attribution(query: Mapping[str, str]) -> str | None:
    """The engine's first-touch payload from the page's URL: ``ref`` -> ``ref_<code>``, else
    ``<utm_source>_<utm_campaign>`` (or the campaign alone), reduced to [A-Za-z0-9_-]{1,64}."""
    ref = _clean(query.get("ref", ""))
    if ref:
        return f"ref_{ref}"[:64]
    campaign = _clean(query.get("utm_campaign", ""))
    if not campaign:
        return None
    source = _clean(query.get("utm_source", ""))
    payload = f"{source}_{campaign}" if source else campaign
    if payload.startswith("ref_"):  # a campaign is never read as somebody's referral
        payload = "ref-" + payload[4:]
    return payload[:64]


def _clean(value: str) -> str:
    return PAYLOAD_JUNK.sub("-", value.strip()).strip("-")[:64]


def locale_hint(lang: str | None, accept_language: str | None) -> str | None:
    """``?lang=`` if it looks like a language tag, else the first of ``Accept-Language``."""
    if lang and LANG.fullmatch(lang.strip()):
        return lang.strip()
    first = (accept_language or "").split(",")[0].split(";")[0].strip()
    return first if LANG.fullmatch(first) else None


class ErrorTexts:
    """The localized ``text`` of error frames (``errors.toml``)."""

    def __init__(self, texts: Mapping[str, Mapping[str, str]], default_locale: str) -> None:
        self.texts = texts
        self.default_locale = default_locale

    @classmethod
    def load(cls, default_locale: str, path: Path = ERRORS_FILE) -> ErrorTexts:
        with path.open("rb") as file:
            texts = tomllib.load(file)
        codes = {locale: set(entries) for locale, entries in texts.items()}
        if codes.get("zh-CN") != codes.get("en"):
            raise ValueError(f"{path}: zh-CN and en must have the same codes")
        return cls(texts, default_locale)

    def frame(self, locale: str | None, code: str, **params: Any) -> dict[str, Any]:
        texts = self.texts[normalize_locale(locale, self.default_locale)]
        return {"type": "error", "code": code, "text": texts[code].format(**params)}
