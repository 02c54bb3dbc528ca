"""Figures as every benchmark reports them: a value beside a baseline from the same run.

A machine's speed changes from run to run and from box to box; a ratio against a baseline
measured a moment before on the same disk, cores and broker does not (much). Each figure
may carry a target, checked against the ratio or against the value itself.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_COMPARE: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Target:
    """`ratio >= 0.5` or `value <= 10` (in the figure's unit)."""

    on: str  # "ratio" or "value"
    op: str  # ">=" or "<="
    limit: float

    def met(self, figure: Figure) -> bool:
        measured = figure.ratio if self.on == "ratio" else figure.value
        return _COMPARE[self.op](measured, self.limit)

    def __str__(self) -> str:
        if self.on == "ratio":
            return f"{self.op} {self.limit:.2f}x"
        return f"{self.op} {self.limit:g}"


@dataclass(frozen=True)
class Figure:
    bench: str
    what: str
    value: float
    unit: str
    baseline: float
    baseline_what: str
    target: Target | None = None

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "met" if self.target.met(self) else "NOT met"


def _num(value: float, unit: str) -> str:
    if unit in ("ms", "%", "KiB"):
        return f"{value:,.2f} {unit}"
    if unit == "MiB":
        return f"{value:,.1f} {unit}"
    return f"{value:,.0f} {unit}"


def table(figures: Sequence[Figure]) -> str:
    """A plain-text table, one figure a row, as the README quotes it."""
    rows = [("benchmark", "figure", "value", "baseline (same run)", "ratio", "target", "")]
    for f in figures:
        target = ""
        if f.target is not None:
            target = str(f.target) + (f" {f.unit}" if f.target.on == "value" else "")
        rows.append(
            (
                f.bench,
                f.what,
                _num(f.value, f.unit),
                f"{f.baseline_what}: {_num(f.baseline, f.unit)}",
                f"{f.ratio:.2f}x" if f.baseline else "-",
                target,
                f.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in (2, 4) else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(figures: Sequence[Figure]) -> None:
    print()
    print(table(figures), flush=True)
