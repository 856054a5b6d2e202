"""Talking to the dialog engine from a registered user's own chat, in tests."""

from __future__ import annotations

import itertools

from bots.dialog.engine import DialogEngine
from bots.dialog.types import Inbound
from tests.integration.accounts_helpers import Person

_ids = itertools.count(1)


class Chat:
    """A registered user talking to the engine from the chat their account was opened in."""

    def __init__(self, engine: DialogEngine, person: Person, locale: str) -> None:
        self.engine, self.person, self.locale = engine, person, locale
        self.chat = person.identity.external_id

    async def send(self, text: str | None = None, *, action: str | None = None,
                   message_id: str | None = None):
        return await self.engine.handle(Inbound(
            self.person.identity.channel, self.chat, message_id or f"m{next(_ids)}", text=text,
            action=action, locale_hint=self.locale))

    def t(self, key: str, **params) -> str:
        return self.engine.catalog.text(self.locale, key, **params)

    def error(self, exc) -> str:
        return self.engine.catalog.error(self.locale, exc)
