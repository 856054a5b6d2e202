"""SMS: the interface the platform sends verification codes through, and its sandbox.

The sandbox behaves like a provider in test mode: it accepts a message, may fail (a configured
share of sends, or the next N sends), and records every message so a developer (and the tests)
can read the code that "arrived" on a phone.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.domain.clock import Clock
from core.domain.errors import SmsUnavailable


class SmsProvider(Protocol):
    async def send(self, phone: str, text: str) -> str:
        """Send ``text`` to an E.164 ``phone``; return the provider's message id."""
        ...


@dataclass(frozen=True, slots=True)
class SmsMessage:
    id: str
    phone: str
    text: str
    sent_at: datetime


class SandboxSms:
    def __init__(self, clock: Clock, *, failure_rate: float = 0.0, delay: float = 0.0,
                 seed: int | None = None) -> None:
        self.clock = clock
        self.failure_rate = failure_rate
        self.delay = delay
        self.fail_next = 0
        self.messages: list[SmsMessage] = []
        self._random = random.Random(seed)

    async def send(self, phone: str, text: str) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next > 0:
            self.fail_next -= 1
            raise SmsUnavailable("sandbox SMS gateway refused the message (fail_next)")
        if self.failure_rate and self._random.random() < self.failure_rate:
            raise SmsUnavailable("sandbox SMS gateway timed out")
        message = SmsMessage(f"sms-{len(self.messages) + 1}", phone, text, self.clock.now())
        self.messages.append(message)
        return message.id

    def inbox(self, phone: str) -> list[SmsMessage]:
        return [m for m in self.messages if m.phone == phone]

    def last_code(self, phone: str) -> str | None:
        """The most recent verification code sent to ``phone`` (what the user would type)."""
        for message in reversed(self.inbox(phone)):
            found = re.search(r"\b(\d{4,8})\b", message.text)
            if found:
                return found.group(1)
        return None
