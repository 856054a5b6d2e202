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


# --- accounts: registration ----------------------------------------------------------------------


class AccountError(DomainError):
    code = "account_error"


class InvalidPhone(AccountError):
    code = "invalid_phone"


class InvalidVerificationCode(AccountError):
    code = "invalid_verification_code"


class VerificationCodeExpired(AccountError):
    code = "verification_code_expired"


class TooManyAttempts(AccountError):
    code = "too_many_attempts"


class ResendTooSoon(AccountError):
    code = "resend_too_soon"


class DailyCodeLimit(AccountError):
    code = "daily_code_limit"


class ConsentRequired(AccountError):
    code = "consent_required"


class AlreadyRegistered(AccountError):
    code = "already_registered"


class NotRegistered(AccountError):
    code = "not_registered"


class UnknownReferralCode(AccountError):
    code = "unknown_referral_code"


class SmsUnavailable(AccountError):
    code = "sms_unavailable"


# --- accounts: real-name verification ----------------------------------------------------------


class InvalidName(AccountError):
    code = "invalid_name"


class InvalidIdNumber(AccountError):
    """``params['reason']``: id_format, id_region, id_birth_date or id_checksum."""

    code = "invalid_id_number"


class InvalidPassport(AccountError):
    code = "invalid_passport"


class UnderAge(AccountError):
    code = "under_age"


class OverAge(AccountError):
    code = "over_age"


class IdentityAlreadyUsed(AccountError):
    code = "identity_already_used"


class KycRequired(AccountError):
    code = "kyc_required"


class KycAlreadySubmitted(AccountError):
    code = "kyc_already_submitted"


class InvalidDocument(AccountError):
    code = "invalid_document"


class DocumentTooLarge(InvalidDocument):
    code = "document_too_large"


class UnsupportedDocumentType(InvalidDocument):
    code = "unsupported_document_type"


# --- accounts: bank cards ----------------------------------------------------------------------


class InvalidCardNumber(AccountError):
    """``params['reason']``: card_format, card_length or card_checksum."""

    code = "invalid_card_number"


class UnsupportedBank(AccountError):
    code = "unsupported_bank"


class CardHolderMismatch(AccountError):
    code = "card_holder_mismatch"


class CardBindingFailed(AccountError):
    code = "card_binding_failed"


class CardRequired(AccountError):
    code = "card_required"


# --- accounts: risk profile ---------------------------------------------------------------------


class QuestionnaireIncomplete(AccountError):
    code = "questionnaire_incomplete"


class InvalidAnswer(AccountError):
    code = "invalid_answer"


class RiskAssessmentRequired(AccountError):
    code = "risk_assessment_required"


class SuitabilityMismatch(AccountError):
    code = "suitability_mismatch"


# --- wallet and custody -------------------------------------------------------------------------


class WalletError(DomainError):
    code = "wallet_error"


class BelowMinimumTopUp(WalletError):
    code = "below_minimum_top_up"


class WithdrawalOutOfRange(WalletError):
    code = "withdrawal_out_of_range"


class DailyWithdrawalLimit(WalletError):
    code = "daily_withdrawal_limit"


class InvalidCallback(WalletError):
    """A bank callback with a bad signature, a replayed nonce or an unknown order."""

    code = "invalid_callback"


class BankUnavailable(WalletError):
    code = "bank_unavailable"


# --- lending ----------------------------------------------------------------------------------


class LendingError(DomainError):
    code = "lending_error"


class UnknownProduct(LendingError):
    code = "unknown_product"


class AmountOutOfRange(LendingError):
    code = "amount_out_of_range"


class TermNotOffered(LendingError):
    code = "term_not_offered"


class MethodNotOffered(LendingError):
    code = "method_not_offered"


class BorrowerRequired(LendingError):
    code = "borrower_required"


class InvestorRequired(LendingError):
    code = "investor_required"


class BorrowingCapExceeded(LendingError):
    """``params['cap']``: person_platform, person_total, company_platform or company_total."""

    code = "borrowing_cap_exceeded"


class ApplicationNotReviewable(LendingError):
    code = "application_not_reviewable"


class RateAboveCap(LendingError):
    code = "rate_above_cap"


class ListingClosed(LendingError):
    code = "listing_closed"


class OwnListing(LendingError):
    code = "own_listing"


class BidBelowMinimum(LendingError):
    code = "bid_below_minimum"


class BidNotMultiple(LendingError):
    code = "bid_not_multiple"


class BidExceedsRemaining(LendingError):
    """``params['remaining']``: what is still open on the listing."""

    code = "bid_exceeds_remaining"


class NoviceOnly(LendingError):
    code = "novice_only"


class NoviceCapExceeded(LendingError):
    code = "novice_cap_exceeded"


class VoucherUnavailable(LendingError):
    """``params['reason']``: expired, used, not_yours, below_minimum."""

    code = "voucher_unavailable"


class UnknownLoan(LendingError):
    code = "unknown_loan"


class NotAParty(LendingError):
    code = "not_a_party"


class InvalidAutoInvestRule(LendingError):
    code = "invalid_auto_invest_rule"


# --- servicing ---------------------------------------------------------------------------------


class ServicingError(DomainError):
    code = "servicing_error"


class NothingToRepay(ServicingError):
    code = "nothing_to_repay"


class NotOverdue(ServicingError):
    """A promise to pay or a collections step on a loan that is not overdue."""

    code = "not_overdue"


class InvalidPromise(ServicingError):
    """``params['reason']``: date_in_past, date_too_far or amount."""

    code = "invalid_promise"


# --- notifications -----------------------------------------------------------------------------


class NotificationError(DomainError):
    code = "notification_error"


class InvalidQuietHours(NotificationError):
    """Quiet hours are ``HH:MM-HH:MM`` (a window that may cross midnight) or ``off``."""

    code = "invalid_quiet_hours"


class UnknownChannel(NotificationError):
    """A preferred channel the user has never written from."""

    code = "unknown_channel"


class InvalidBroadcast(NotificationError):
    """``params['reason']``: name, text, too_long, button, segment, send_at or state."""

    code = "invalid_broadcast"
