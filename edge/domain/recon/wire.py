"""Findings as the contract's models: what the plumbing puts in a `recon/report`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from edge.contract.recon import Diagnosis as WireDiagnosis
from edge.contract.recon import (
    DiagnosisAnswers,
    DiagnosisClass,
    MismatchKind,
    ReportSummary,
)
from edge.contract.recon import Mismatch as WireMismatch
from edge.domain.money import ZERO
from edge.domain.recon.records import Diagnosis, Finding


def diagnosis_to_wire(d: Diagnosis) -> WireDiagnosis:
    return WireDiagnosis(
        class_=d.class_,
        pattern=d.pattern,
        answers=DiagnosisAnswers(**d.answers),
        evidence=list(d.evidence),
        fix_sequence=list(d.fix_sequence),
    )


def mismatch_to_wire(
    f: Finding, *, mismatch_id: str, detected_at: datetime, now: datetime
) -> WireMismatch:
    """One finding as a `Mismatch`; `age_s` is the time since the refund was made."""
    return WireMismatch(
        mismatch_id=mismatch_id,
        kind=f.kind,
        return_id=f.return_id,
        external_ref=f.external_ref,
        sale_id=f.sale_id,
        currency=f.currency,
        store_amount=f.store_amount,
        hq_amount=f.hq_amount,
        delta=f.delta,
        detected_at=detected_at,
        age_s=max(0.0, (now - f.occurred_at).total_seconds()),
        diagnosis=diagnosis_to_wire(f.diagnosis),
    )


def at_risk(f: Finding) -> Decimal:
    """What a mismatch puts at risk in its currency: the difference when both sides hold
    an amount in it, else the one side's amount."""
    if f.delta is not None:
        return abs(f.delta)
    if f.store_amount is not None:
        return abs(f.store_amount)
    return abs(f.hq_amount) if f.hq_amount is not None else ZERO


def summarize(findings: Sequence[Finding]) -> ReportSummary:
    """The report's `summary`: counts by kind and class, amount at risk by currency."""
    by_kind: Counter[MismatchKind] = Counter(f.kind for f in findings)
    by_class: Counter[DiagnosisClass] = Counter(f.diagnosis.class_ for f in findings)
    risk: dict[str, Decimal] = {}
    for f in findings:
        risk[f.currency] = risk.get(f.currency, ZERO) + at_risk(f)
    return ReportSummary(by_kind=dict(by_kind), by_class=dict(by_class), amount_at_risk=risk)
