"""What a flow step gets: the turn, the unit of work, the catalogs and small reply helpers."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bots.dialog.types import Button, Inbound, Reply
from core.adapters.uow import UnitOfWork
from core.domain.errors import CardRequired, DomainError, KycRequired
from core.services.registration import ChannelIdentity

if TYPE_CHECKING:
    from bots.dialog.engine import DialogEngine, Turn


@dataclass
class Ctx:
    engine: DialogEngine
    uow: UnitOfWork
    turn: Turn
    inbound: Inbound
    identity: ChannelIdentity
    user_id: int | None

    @property
    def core(self) -> Any:
        return self.engine.core

    @property
    def data(self) -> dict[str, Any]:
        return self.turn.data

    def t(self, key: str, **params: Any) -> str:
        return self.engine.catalog.text(self.turn.locale, key, **params)

    def button(self, action: str, key: str, **params: Any) -> Button:
        return Button(action, self.t(key, **params))

    def reply(self, key: str, *buttons: Button, **params: Any) -> Reply:
        return Reply(self.t(key, **params), tuple(buttons))

    def error(self, exc: DomainError, *buttons: Button) -> Reply:
        """A refusal in the user's language; the flow stays on its step (nothing is lost)."""
        return Reply(self.engine.catalog.error(self.turn.locale, exc), tuple(buttons))

    def begin(self, flow: str) -> None:
        """This conversation is now in ``flow``, with nothing collected yet."""
        self.turn.flow = flow
        self.data.clear()

    def goto(self, step: str) -> None:
        self.turn.step = step

    def finish(self) -> None:
        self.turn.flow, self.turn.step, self.turn.data = None, None, {}

    async def needs_verified_card(self) -> list[Reply] | None:
        """Money moves only for a verified user with a bound card: otherwise the refusal, with
        a button to the step that is missing; ``None`` when both are there."""
        try:
            await self.core.kyc.verified_person(self.uow, self.user_id)
            await self.core.cards.require_card(self.uow, self.user_id)
        except KycRequired as exc:
            return [self.error(exc, self.button("flow:kyc", "action_kyc"))]
        except CardRequired as exc:
            return [self.error(exc, self.button("flow:card", "action_bind_card"))]
        return None

    def seal(self, value: str, context: str) -> str:
        """Personal data kept between steps is stored encrypted in the conversation state."""
        return base64.b64encode(self.core.protector.seal(value, context=context)).decode()

    def unseal(self, value: str, context: str) -> str:
        return self.core.protector.open_text(base64.b64decode(value), context=context)


class Flow(Protocol):
    name: str

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]: ...

    async def step(self, ctx: Ctx) -> list[Reply]: ...
