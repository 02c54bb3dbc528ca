"""The store's base rates, and the test of whether mismatches cluster far above them.

A refund has four traits the seed's third question names: the categories of its lines, its
size band, its source (where it was keyed in) and its fulfilment channel. The base rate of a
trait is the share of all the store's refunds of the period that have it. Mismatches are
*concentrated* in a trait when at least `CLUSTER_MIN` (3) of them have it and their share
among the mismatches is at least `CLUSTER_FACTOR` (2x) its base share: 3 of 4 mismatches in
"electronics" where electronics are 10 % of refunds is a cluster; 3 of 30 is not. A trait no
store refund has (an HQ-only source such as `distribution_center`) has base share 0, so 3
mismatches with it are a cluster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from edge.domain.recon.records import Finding, HqEntry, StoreRefund

CLUSTER_MIN = 3
CLUSTER_FACTOR = 2
# Size bands in the currency's major unit: a basket refund, a few items, a big-ticket item.
SIZE_BANDS: tuple[tuple[Decimal, str], ...] = (
    (Decimal(25), "size:<25"),
    (Decimal(100), "size:25-100"),
    (Decimal(500), "size:100-500"),
)

Trait = str  # "category:shoes", "size:25-100", "source:handheld", "channel:online"


def size_band(total: Decimal) -> Trait:
    for limit, name in SIZE_BANDS:
        if total < limit:
            return name
    return "size:500+"


def store_traits(refund: StoreRefund) -> frozenset[Trait]:
    traits = {size_band(refund.total), f"source:{refund.source}", f"channel:{refund.channel}"}
    traits.update(f"category:{ln.category}" for ln in refund.lines if ln.category)
    return frozenset(traits)


def entry_traits(entry: HqEntry) -> frozenset[Trait]:
    # An HQ source of "gateway" is the store's own; any other names who made it at HQ.
    channel = "online" if entry.order_id or entry.source == "storefront" else "store"
    traits = {size_band(entry.total), f"source:{entry.source}", f"channel:{channel}"}
    traits.update(f"category:{ln.category}" for ln in entry.lines if ln.category)
    return frozenset(traits)


def finding_traits(finding: Finding) -> frozenset[Trait]:
    """The store's view of the refund when it has one, else HQ's."""
    if finding.store is not None:
        return store_traits(finding.store)
    if finding.entry is not None:
        return entry_traits(finding.entry)
    return frozenset()


@dataclass(frozen=True, slots=True)
class BaseRates:
    """How many of the period's store refunds have each trait."""

    refunds: int
    counts: dict[Trait, int]

    def share(self, trait: Trait) -> float:
        return self.counts.get(trait, 0) / self.refunds if self.refunds else 0.0


def base_rates(refunds: Iterable[StoreRefund]) -> BaseRates:
    """Base rates from all the store's refunds of the period (matched or not)."""
    counts: Counter[Trait] = Counter()
    n = 0
    for refund in refunds:
        n += 1
        counts.update(store_traits(refund))
    return BaseRates(n, dict(counts))


@dataclass(frozen=True, slots=True)
class Clusters:
    """Traits in which this run's mismatches cluster, with their counts and shares."""

    mismatches: int
    hot: dict[Trait, tuple[int, float, float]]  # trait -> (count, share, base share)


def clusters(traits: list[frozenset[Trait]], rates: BaseRates) -> Clusters:
    counts: Counter[Trait] = Counter()
    for ts in traits:
        counts.update(ts)
    n = len(traits)
    hot: dict[Trait, tuple[int, float, float]] = {}
    if n:
        for trait, count in counts.items():
            share, base = count / n, rates.share(trait)
            if count >= CLUSTER_MIN and share >= CLUSTER_FACTOR * base:
                hot[trait] = (count, share, base)
    return Clusters(n, hot)
