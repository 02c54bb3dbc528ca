"""Reconciliation matching: 10,000 store refunds against HQ's digest, diagnosis included.

The digest is made from the store's refunds with about 2 % of them changed (dropped, amount,
currency, reference, status, duplicated, or an unknown entry added), so the run matches
every refund, finds every planted difference once and diagnoses it (recomputation, base
rates, repeats). The baseline, in the same run: a plain dict join of the same ids with a
total comparison and no diagnosis, the floor any matcher pays.

Run from the repository root:  .venv/bin/python -m bench.bench_recon_match [--refunds 10000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from edge.domain.money import from_minor
from edge.domain.recon import HqEntry, HqLine, SoldLine, StoreLine, StoreRefund, compare

from .report import Figure, Target, print_table

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
START = NOW - timedelta(days=8)
SETTLE = timedelta(hours=24)
CATEGORIES = ("shoes", "toys", "books", "tools", "garden", "kitchen")
PLANTED_SHARE = 0.02


def store_refund(rng: random.Random, n: int) -> StoreRefund:
    """One receipt refund of one unit of a line sold 1-3 times (cent-exact figures)."""
    sold = rng.randint(1, 3)
    unit = rng.randint(100, 20_000)
    tax_minor = unit * sold * 8 // 100
    line = SoldLine(
        "1", sold, from_minor(unit, "USD"), Decimal(0), Decimal(0), from_minor(tax_minor, "USD")
    )
    amount = from_minor(unit, "USD")
    tax = from_minor(tax_minor // sold + (1 if tax_minor % sold else 0), "USD")
    created = START + timedelta(seconds=rng.randint(0, 6 * 86_400))
    return StoreRefund(
        return_id=f"R-{n:06d}",
        sale_id=f"S-{n:06d}",
        currency="USD",
        total=amount + tax,
        tax=tax,
        tenders=(("card", amount + tax),),
        lines=(StoreLine("1", f"SKU-{n}", rng.choice(CATEGORIES), 1, amount, tax, line),),
        kind="receipt",
        refund_to="original",
        hq_status="settled",
        created_at=created,
        decided_at=created + timedelta(minutes=1),
        sent_at=created + timedelta(seconds=2),
        source=rng.choice(("register", "handheld")),
        customer_ref=f"C-{rng.randint(1, 2_000)}",
    )


def entry(r: StoreRefund) -> HqEntry:
    return HqEntry(
        return_id=r.return_id,
        external_ref=f"HQ-{r.return_id}",
        source="gateway",
        sale_id=r.sale_id,
        order_id=None,
        currency=r.currency,
        total=r.total,
        tax=r.tax,
        tenders=r.tenders,
        lines=tuple(
            HqLine(ln.line_id, ln.sku, ln.category, ln.quantity, ln.amount, ln.tax)
            for ln in r.lines
        ),
        status="settled",
        created_at=r.created_at,
        kind="receipt",
        settled_at=r.decided_at,
        erp_posted_at=r.created_at + timedelta(minutes=3),
    )


MUTATIONS: tuple[Callable[[HqEntry], list[HqEntry]], ...] = (
    lambda e: [],
    lambda e: [replace(e, total=e.total + Decimal("0.03"))],
    lambda e: [replace(e, currency="EUR")],
    lambda e: [replace(e, sale_id=None, lines=())],
    lambda e: [replace(e, status="pending", settled_at=None)],
    lambda e: [e, replace(e, external_ref=e.external_ref + "-again")],
    lambda e: [
        e,
        replace(
            e, return_id=None, external_ref="ERP-" + e.external_ref, sale_id=None, total=e.total + 1
        ),
    ],
)


def workload(count: int, seed: int = 7) -> tuple[list[StoreRefund], list[HqEntry], int]:
    rng = random.Random(seed)
    store = [store_refund(rng, n) for n in range(count)]
    entries: list[HqEntry] = []
    planted = 0
    for r in store:
        if rng.random() < PLANTED_SHARE:
            entries += rng.choice(MUTATIONS)(entry(r))
            planted += 1
        else:
            entries.append(entry(r))
    rng.shuffle(entries)
    return store, entries, planted


def plain_join(store: list[StoreRefund], entries: list[HqEntry]) -> int:
    by_id = {e.return_id: e for e in entries if e.return_id is not None}
    return sum(1 for r in store if (e := by_id.get(r.return_id)) is None or e.total != r.total)


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def figures(quick: bool, folder: Path | None = None, refunds: int | None = None) -> list[Figure]:
    del folder  # all in memory
    count = refunds or 10_000
    store, entries, planted = workload(count)

    def run() -> object:
        return compare(
            store, entries, period_from=START, period_to=NOW, now=NOW, settle_within=SETTLE
        )

    found = compare(store, entries, period_from=START, period_to=NOW, now=NOW, settle_within=SETTLE)
    runs = 3 if quick else 7
    ms = best_of(runs, run)
    base = best_of(runs, lambda: plain_join(store, entries))
    print(
        f"recon: {count} refunds, {len(entries)} digest entries, {planted} planted differences,"
        f" {len(found)} mismatches found and diagnosed in {ms:.1f} ms (best of {runs});"
        f" plain dict join {base:.2f} ms",
        flush=True,
    )
    return [
        Figure(
            "recon_match",
            f"match + diagnose {count} refunds",
            ms,
            "ms",
            base,
            "plain dict join, no diagnosis",
            Target("value", "<=", 1000.0),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refunds", type=int, default=10_000)
    args = parser.parse_args()
    print_table(figures(False, None, args.refunds))


if __name__ == "__main__":
    main()
