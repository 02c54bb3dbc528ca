"""Refund KPIs as `GET /v1/kpis` answers them, and the arithmetic behind them.

Percentiles are nearest-rank (the smallest sample with at least p% of the samples at or
below it), so every figure is a time that was actually measured, never an interpolation
between two refunds. A rate is a count over a count, both given with it, and null when
there is nothing to divide by: a store with no refunds has no offline share, not 0%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import ConfigDict, Field, with_config

from edge.domain.views import Timestamp, strict

REPEAT_WINDOW_DAYS = 30


def percentile(samples: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of `samples` (0 < p <= 100); None when there are none."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(part: int, whole: int) -> float | None:
    """`part / whole` to four decimals, None when `whole` is 0."""
    return None if whole == 0 else round(part / whole, 4)


Seconds = Annotated[float | None, Field(ge=0, description="seconds; null with no samples")]
Rate = Annotated[float | None, Field(ge=0, le=1, description="0..1; null when nothing to count")]
# Mismatches include refunds HQ holds that the store does not: there may be more than refunds.
PerRefund = Annotated[
    float | None, Field(ge=0, description="mismatches per refund; null with no refunds")
]


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class Durations:
    """p50/p95 of the measured durations, and how many there were."""

    samples: int
    p50_s: Seconds
    p95_s: Seconds

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Durations:
        return cls(
            samples=len(seconds), p50_s=percentile(seconds, 50), p95_s=percentile(seconds, 95)
        )


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class MismatchRate:
    mismatches: Annotated[int, Field(description="mismatches detected in the period")]
    refunds: Annotated[int, Field(description="refunds created in the period")]
    rate: PerRefund


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class OfflineShare:
    offline: Annotated[int, Field(description="refunds made while HQ could not confirm")]
    refunds: int
    rate: Rate


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class RepeatPurchase:
    customers: Annotated[
        int,
        Field(
            description="customers (by customer_ref) with a refund in the period, declined"
            " refunds left out"
        ),
    ]
    repeat: Annotated[
        int, Field(description="of them, those with a sale within window_days after a refund")
    ]
    rate: Rate
    window_days: int


# `from` is a Python keyword: the field is `from_`, read and written as `from`.
_by_alias = with_config(ConfigDict(extra="forbid", serialize_by_alias=True, validate_by_name=True))


@_by_alias
@dataclass(frozen=True, slots=True, kw_only=True)
class Kpis:
    """Refund KPIs over [from, to): refunds are counted by their creation time."""

    from_: Annotated[Timestamp, Field(alias="from")]
    to: Timestamp
    refund_processing: Annotated[
        Durations,
        Field(
            description="receipt look-up (or the scan it resolved) to refund confirmation:"
            " the latest look-up of the sale before the refund and after its previous refund"
        ),
    ]
    hq_settlement: Annotated[
        Durations, Field(description="refund creation to HQ's settled or declined answer")
    ]
    mismatch_rate: MismatchRate
    offline_share: OfflineShare
    repeat_purchase: RepeatPurchase
