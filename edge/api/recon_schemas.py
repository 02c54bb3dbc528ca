"""Response models of the reconciliation endpoints. Reports and mismatches are the wire
models of the contract (`edge.contract.recon`), so the LAN API shows exactly what was sent
to HQ on `recon/report`; `/openapi.json` documents the same classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from edge.contract.recon import Mismatch, Report
from edge.domain.views import strict

# Open mismatches listed in one answer; `open_count` says how many there are in all.
OPEN_LISTED_MAX = 500


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciliation:
    """The latest report (a digest's or a checkpoint run's) and the mismatches still open."""

    latest_report: Annotated[Report | None, Field(description="null before the first run")]
    open_count: Annotated[int, Field(ge=0, description="open mismatches in all")]
    open_mismatches: Annotated[
        list[Mismatch],
        Field(
            max_length=OPEN_LISTED_MAX,
            description=f"the open mismatches, oldest first, at most {OPEN_LISTED_MAX}",
        ),
    ]


@strict
@dataclass(frozen=True, slots=True, kw_only=True)
class RunAccepted:
    """A checkpoint run was made; its report is at the `Location` given."""

    report_id: str
