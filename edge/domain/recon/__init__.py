"""Reconciliation, pure: match the ledger's refunds with HQ's digest, recompute amounts under
the other plausible rounding and discount rules, and diagnose each mismatch as an
integration or a process problem (contract v1.1, "Reconciliation").

The plumbing fills in `records` from the ledger and the digest, calls `compare` (a digest
run) or `unconfirmed` (the checkpoint), and turns each `Finding` into the contract's
`Mismatch` with `wire.mismatch`. Nothing here does I/O or reads a clock: `now` is passed in.
"""

from edge.domain.recon.checkpoint import unconfirmed
from edge.domain.recon.match import MATCH_WINDOW, compare
from edge.domain.recon.records import (
    Answers,
    Diagnosis,
    Finding,
    HqEntry,
    HqLine,
    PriorMismatch,
    SoldLine,
    StoreLine,
    StoreRefund,
    entry_from_wire,
)
from edge.domain.recon.stats import BaseRates, base_rates
from edge.domain.recon.wire import diagnosis_to_wire, mismatch_to_wire, summarize

__all__ = [
    "MATCH_WINDOW",
    "Answers",
    "BaseRates",
    "Diagnosis",
    "Finding",
    "HqEntry",
    "HqLine",
    "PriorMismatch",
    "SoldLine",
    "StoreLine",
    "StoreRefund",
    "base_rates",
    "compare",
    "diagnosis_to_wire",
    "entry_from_wire",
    "mismatch_to_wire",
    "summarize",
    "unconfirmed",
]
