"""Identity check (实名认证): the interface to the identity provider, and its sandbox.

A real provider compares a name and an ID number with the public security records and answers
match, mismatch, or nothing at all (timeouts and maintenance windows are common); the platform
keeps such submissions pending and asks again later. The sandbox is deterministic: by default a
name beginning with "Mismatch"/"不符" does not match, one beginning with "Unavailable"/"超时" gets
no answer, and everyone else matches; ``unavailable_next`` and a fixed outcome cover other tests.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Protocol


class IdentityOutcome(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    UNAVAILABLE = "unavailable"


class IdentityProvider(Protocol):
    async def verify(self, full_name: str, id_type: str, id_number: str) -> IdentityOutcome: ...


class SandboxIdentityProvider:
    def __init__(self, *, outcome: str = "by_name", delay: float = 0.0) -> None:
        self.outcome = outcome
        self.delay = delay
        self.unavailable_next = 0
        self.calls: list[tuple[str, str]] = []  # (id_type, masked number) of each request

    async def verify(self, full_name: str, id_type: str, id_number: str) -> IdentityOutcome:
        self.calls.append((id_type, id_number[:3] + "***"))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.unavailable_next > 0:
            self.unavailable_next -= 1
            return IdentityOutcome.UNAVAILABLE
        if self.outcome != "by_name":
            return IdentityOutcome(self.outcome)
        if full_name.startswith(("Mismatch", "不符")):
            return IdentityOutcome.MISMATCH
        if full_name.startswith(("Unavailable", "超时")):
            return IdentityOutcome.UNAVAILABLE
        return IdentityOutcome.MATCH
