"""Reconciliation (contract v1.1): HQ's digest of what it and its ERP hold for a store, on
`recon/digest`, and the gateway's report of what differs and why, on `recon/report`.

Every key the contract lists is required (null where the contract allows null), so a
digest that lost a field is refused whole rather than read as "HQ holds nothing there".
Amounts are `Decimal` in code and decimal text on the wire; a JSON number is refused.
`from` and `class` are Python keywords: the fields are `from_` and `class_`, written and
read by their wire names (`serialize_by_alias`), and also accepted by field name in code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self, get_args

from pydantic import ConfigDict, Field, StrictBool, StrictInt, model_validator

from edge.contract.wire_types import Amount, Currency, Instant, WireModel

# Upper bounds a receiver enforces, so that one message cannot exhaust its memory. A sender
# with more splits the period into several digests (each with its own `digest_id`).
DIGEST_REFUNDS_MAX = 5_000  # entries in one digest
REPORT_MISMATCHES_MAX = 5_000  # mismatches listed in one report
LINES_MAX = 500  # lines of one refund (as many as a sale may have)
TENDERS_MAX = 20  # tenders of one refund (as many as a sale may have)
EVIDENCE_MAX = 32  # facts behind one diagnosis
FIX_STEPS_MAX = 16  # steps of one fix sequence
ID_MAX = 128  # identifiers: digest, report, mismatch, return, sale, order, store, line ids
REF_MAX = 256  # references of other systems and people: external, processor, ERP, editor
TEXT_MAX = 1024  # one evidence line or fix step

DigestSource = Literal[
    "gateway", "storefront", "register", "customer_service", "distribution_center", "erp"
]
DigestStatus = Literal["pending", "settled", "declined"]
# How the refund was made, as HQ records it (wider than the LAN API's `kind`).
RefundKind = Literal["receipt", "no_receipt", "goodwill", "store_credit", "cash"]
MismatchKind = Literal[
    "unconfirmed",
    "missing-at-hq",
    "unknown-to-store",
    "amount-mismatch",
    "currency-mismatch",
    "missing-reference",
    "status-mismatch",
    "duplicate",
]
DiagnosisClass = Literal["integration", "process", "both", "undetermined"]
IntegrationPattern = Literal[
    "api-sync-failure",
    "field-mapping",
    "rounding-drift",
    "promo-mismatch",
    "partial-sync",
    "async-gap",
]
ProcessPattern = Literal[
    "register-bypass", "verbal-approval", "cross-team-handoff", "store-credit-loop"
]
Pattern = Literal[IntegrationPattern, ProcessPattern]

MISMATCH_KINDS: tuple[MismatchKind, ...] = get_args(MismatchKind)
DIAGNOSIS_CLASSES: tuple[DiagnosisClass, ...] = get_args(DiagnosisClass)
INTEGRATION_PATTERNS: tuple[IntegrationPattern, ...] = get_args(IntegrationPattern)
PROCESS_PATTERNS: tuple[ProcessPattern, ...] = get_args(ProcessPattern)

Id = Annotated[str, Field(min_length=1, max_length=ID_MAX)]
Ref = Annotated[str, Field(min_length=1, max_length=REF_MAX)]
Text = Annotated[str, Field(max_length=TEXT_MAX)]
Count = Annotated[StrictInt, Field(ge=0)]


class _Recon(WireModel):
    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


def _check_period(from_: datetime, to: datetime) -> None:
    if to <= from_:
        raise ValueError("`to` must be after `from`")


class DigestTender(_Recon):
    type: str = Field(min_length=1, max_length=32, description="card, cash, gift_card, ...")
    amount: Amount


class DigestLine(_Recon):
    line_id: Id
    sku: str | None = Field(max_length=REF_MAX)
    category: str | None = Field(max_length=REF_MAX)
    quantity: StrictInt = Field(ge=1)
    amount: Amount
    tax: Amount


class DigestEntry(_Recon):
    """One refund that HQ or its ERP holds for the store."""

    return_id: Id | None = Field(description="null when it did not come through a gateway")
    external_ref: Ref = Field(description="HQ's or the ERP's own id")
    source: DigestSource
    sale_id: Id | None
    order_id: Id | None
    currency: Currency
    total: Amount
    tax: Amount
    tenders: list[DigestTender] = Field(max_length=TENDERS_MAX)
    lines: list[DigestLine] = Field(max_length=LINES_MAX)
    status: DigestStatus
    processor_ref: Ref | None
    erp_ref: Ref | None
    created_at: Instant
    settled_at: Instant | None
    erp_posted_at: Instant | None
    edited_by: Ref | None = Field(description="who changed it by hand after it was recorded")
    approved_by: Ref | None
    kind: RefundKind


class Digest(_Recon):
    """On `recon/digest` (HQ -> gateway): every refund HQ or its ERP holds for the store
    with `created_at` in [`from`, `to`)."""

    digest_id: Id
    from_: Instant = Field(alias="from")
    to: Instant
    generated_at: Instant
    refunds: list[DigestEntry] = Field(max_length=DIGEST_REFUNDS_MAX)

    @model_validator(mode="after")
    def _period(self) -> Self:
        _check_period(self.from_, self.to)
        return self


class DiagnosisAnswers(_Recon):
    """The five diagnostic questions: true, false, or null when there is not enough data."""

    repeats: StrictBool | None
    manual_touch: StrictBool | None
    concentrated: StrictBool | None
    delayed: StrictBool | None
    reproducible: StrictBool | None


class Diagnosis(_Recon):
    class_: DiagnosisClass = Field(alias="class")
    pattern: Pattern | None
    answers: DiagnosisAnswers
    evidence: list[Text] = Field(max_length=EVIDENCE_MAX)
    fix_sequence: list[Text] = Field(
        max_length=FIX_STEPS_MAX, description="integration steps before process steps"
    )


class Mismatch(_Recon):
    mismatch_id: Id
    kind: MismatchKind
    return_id: Id | None
    external_ref: Ref | None
    sale_id: Id | None
    currency: Currency
    store_amount: Amount | None
    hq_amount: Amount | None
    delta: Amount | None = Field(description="hq_amount - store_amount")
    detected_at: Instant
    age_s: float = Field(ge=0)
    diagnosis: Diagnosis


class ReportSummary(_Recon):
    by_kind: dict[MismatchKind, Count]
    by_class: dict[DiagnosisClass, Count]
    amount_at_risk: dict[Currency, Amount]


class Report(_Recon):
    """On `recon/report` (gateway -> HQ): one per digest (`digest_id`) and one per
    checkpoint run (`digest_id` null)."""

    report_id: Id
    digest_id: Id | None
    store_id: Id
    gateway_id: Id
    from_: Instant = Field(alias="from")
    to: Instant
    generated_at: Instant
    checked: Count
    matched: Count
    mismatches: list[Mismatch] = Field(max_length=REPORT_MISMATCHES_MAX)
    summary: ReportSummary

    @model_validator(mode="after")
    def _period(self) -> Self:
        _check_period(self.from_, self.to)
        return self
