"""The domain's exception root, and the refusals that follow from the rules, each with the
contract's stable slug.

This module imports nothing (checked by `lint-imports`), so every layer may raise or catch
these without pulling in more than the rules: the API answers a refusal as a problem
document, the HQ link as a malformed order, the ledger writer rolls the job back.
"""

from __future__ import annotations


class DomainError(Exception):
    """Root of every error the pure domain raises: money that cannot be made, a refusal."""


class PolicyViolation(DomainError):
    """A request the rules refuse; `code` is the contract's problem slug."""

    code = "validation-failed"

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidRequest(PolicyViolation):
    code = "validation-failed"


class TenderMismatch(PolicyViolation):
    code = "tender-mismatch"


class QuantityExceedsReturnable(PolicyViolation):
    code = "quantity-exceeds-returnable"


class ReturnWindowExpired(PolicyViolation):
    code = "return-window-expired"


class FinalSale(PolicyViolation):
    code = "final-sale"


class ApprovalRequired(PolicyViolation):
    code = "approval-required"


class OfflineLimitExceeded(PolicyViolation):
    code = "offline-limit-exceeded"


class SaleConflict(PolicyViolation):
    code = "sale-conflict"


class NotFound(PolicyViolation):
    code = "not-found"


class IdempotencyKeyReused(PolicyViolation):
    code = "idempotency-key-reused"


class HqUnreachable(PolicyViolation):
    code = "hq-unreachable"
