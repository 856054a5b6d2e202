"""The domain's errors: one class per broken rule, all under ``DomainError``.

Each error has a stable ``code``; the dialog catalogs turn codes into zh/en messages for users,
and ``params`` carries the values those messages mention.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Root of every business rule violation. Nothing was written when one is raised."""

    code = "domain_error"

    def __init__(self, message: str = "", **params: Any) -> None:
        super().__init__(message or self.code)
        self.params = params


class InvalidAmount(DomainError):
    code = "invalid_amount"


class CurrencyMismatch(DomainError):
    code = "currency_mismatch"


class LedgerError(DomainError):
    code = "ledger_error"


class UnbalancedTransfer(LedgerError):
    code = "unbalanced_transfer"


class EmptyTransfer(LedgerError):
    code = "empty_transfer"


class NonPositiveLeg(LedgerError):
    code = "non_positive_leg"


class UnknownAccount(LedgerError):
    code = "unknown_account"


class InsufficientFunds(LedgerError):
    code = "insufficient_funds"


class IdempotencyConflict(LedgerError):
    """The key was used before for a different transfer."""

    code = "idempotency_conflict"


class AlreadyReversed(LedgerError):
    code = "already_reversed"


class DuplicateAccount(LedgerError):
    code = "duplicate_account"
