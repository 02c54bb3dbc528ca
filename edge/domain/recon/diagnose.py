"""The five diagnostic questions, answered from the data, and the class they point to.

Per the seed (002): integration if the mismatch repeats, nobody touched it, it is spread
evenly, it appeared after a delay and recomputing reproduces it; process if the opposite.

- `repeats`: another mismatch of the same kind (and pattern, when both have one), this run
  or in `history`, for the same customer, the same sale or order, or the same refund kind.
  None with nothing to compare against (no history and no other finding) or no keys.
- `manual_touch`: True when HQ's entry was edited by hand or either side has an approval on
  record; False when both sides are present and show neither; None when only one side is
  (the other system's record, which could show a touch, is missing).
- `concentrated`: this run's mismatches cluster in one of the finding's traits (see
  `stats`); None with fewer than 3 mismatches in the run.
- `delayed`: HQ settled or posted it, or the gateway delivered it, more than
  `DELAYED_AFTER` after it was made, or it was made offline, or one side is still pending
  past the checkpoint; False when those times are known and short; None when unknown.
- `reproducible`: from recomputation (`recompute.explain`) or a plain mapping transform.

Class: a process pattern and an integration pattern together are `both`, and so is an
integration pattern on an entry someone edited at HQ by hand; otherwise the pattern's family
decides. Without a pattern, the answers vote: a lead of two or more decides, else
`undetermined`. When `both`, the integration steps come first: a workflow fixed on top of a
sync that still drops records breaks again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from edge.contract.recon import (
    EVIDENCE_MAX,
    FIX_STEPS_MAX,
    TEXT_MAX,
    DiagnosisClass,
    Pattern,
)
from edge.domain.money import fmt
from edge.domain.recon.patterns import (
    FIXES,
    Found,
    credit_loops,
    hq_credit_loops,
    integration_pattern,
    process_pattern,
)
from edge.domain.recon.records import Answers, Diagnosis, Finding, PriorMismatch, StoreRefund
from edge.domain.recon.stats import (
    CLUSTER_MIN,
    BaseRates,
    Clusters,
    clusters,
    finding_traits,
)
from edge.domain.recon.stats import base_rates as rates_of

DELAYED_AFTER = timedelta(hours=1)  # a sync takes seconds; an ERP batch cycle takes hours

GENERIC_FIXES: dict[DiagnosisClass, list[str]] = {
    "integration": [
        "Audit the integration's mapping for this refund type against {id}",
        "Log what was sent to HQ and what HQ confirmed for every refund",
    ],
    "process": [
        "Map the refund workflow that produced {id}; find the step where HQ's update is "
        "skipped or changed",
        "Make the HQ update part of issuing the refund, not a separate step",
    ],
    "both": [],
    "undetermined": [
        "Compare {id} by hand in both systems and record what differs",
        "Re-run reconciliation after HQ's next digest",
    ],
}

RepeatKey = tuple[str, str, str]  # (mismatch kind, "customer" | "sale" | "kind", value)


def _repeat_keys(
    kind: str, customer: str | None, sale: str | None, refund_kind: str | None
) -> list[RepeatKey]:
    keys = []
    for name, value in (("customer", customer), ("sale", sale), ("kind", refund_kind)):
        if value:
            keys.append((kind, name, value))
    return keys


def _finding_keys(f: Finding) -> list[RepeatKey]:
    s, e = f.store, f.entry
    return _repeat_keys(
        f.kind,
        s.customer_ref if s else None,
        f.sale_id,
        s.kind if s else e.kind if e else None,
    )


class _Repeats:
    """Mismatches by (kind, key) and by pattern, this run's and history's, so each answer
    looks at a handful of entries whatever the run's size."""

    def __init__(
        self,
        findings: Sequence[Finding],
        patterns: Sequence[Pattern | None],
        history: Sequence[PriorMismatch],
    ) -> None:
        self.any: dict[RepeatKey, list[str]] = defaultdict(list)
        self.by_pattern: dict[tuple[RepeatKey, Pattern | None], list[str]] = defaultdict(list)
        marks = [(f.key, p, _finding_keys(f)) for f, p in zip(findings, patterns, strict=True)]
        marks += [
            (h.key, h.pattern, _repeat_keys(h.kind, h.customer_ref, h.sale_id, h.refund_kind))
            for h in history
        ]
        for key, p, repeat_keys in marks:
            for k in repeat_keys:
                self.any[k].append(key)
                self.by_pattern[(k, p)].append(key)
        self.comparable = len(findings) > 1 or bool(history)

    def answer(self, f: Finding, pattern: Pattern | None) -> tuple[bool | None, list[str]]:
        keys = _finding_keys(f)
        if not keys or not self.comparable:
            return None, []
        for k in keys:
            pools = (
                [self.any.get(k, [])]
                if pattern is None
                else [self.by_pattern.get((k, pattern), []), self.by_pattern.get((k, None), [])]
            )
            other = next((key for pool in pools for key in pool if key != f.key), None)
            if other is not None:
                what = {"customer": "customer", "sale": "sale/order", "kind": "refund kind"}
                return True, [
                    f"{f.kind} recurs for the same {what[k[1]]} {k[2]}: also {other}"
                    f" ({len(self.any[k])} on record with it)"
                ]
        return False, []


def _manual_touch(f: Finding) -> tuple[bool | None, list[str]]:
    s, e = f.store, f.entry
    facts = []
    if e is not None and e.edited_by:
        facts.append(f"HQ's {e.external_ref} was edited by hand by {e.edited_by}")
    if e is not None and e.approved_by:
        facts.append(f"HQ records an approval by {e.approved_by}")
    if s is not None and s.approved_by:
        facts.append(f"the gateway records an approval by {s.approved_by} for {s.return_id}")
    if facts:
        return True, facts
    return (False if s is not None and e is not None else None), []


def _delayed(f: Finding, settle_within: timedelta) -> tuple[bool | None, list[str]]:
    s, e = f.store, f.entry
    if f.kind == "status-mismatch" and "pending" in (s and s.hq_status, e and e.status):
        return True, [f"still pending on one side {settle_within} after the refund"]
    made = s.created_at if s else e.created_at if e else f.occurred_at
    gaps: list[tuple[str, timedelta]] = []
    if e is not None:
        for name, at in (("settled", e.settled_at), ("posted to the ERP", e.erp_posted_at)):
            if at is not None:
                gaps.append((f"HQ {name}", at - made))
    if s is not None and s.sent_at is not None:
        gaps.append(("the gateway delivered it", s.sent_at - made))
    if s is not None and s.offline:
        return True, [f"refund {s.return_id} was made offline and delivered later"]
    late = [(n, g) for n, g in gaps if g > DELAYED_AFTER]
    if late:
        name, gap = max(late, key=lambda x: x[1])
        return True, [f"{name} {gap} after the refund was made"]
    return (False if gaps else None), []


def _concentrated(traits: frozenset[str], cl: Clusters) -> tuple[bool | None, list[str]]:
    if cl.mismatches < CLUSTER_MIN or not traits:
        return None, []
    hot = sorted(t for t in traits if t in cl.hot)
    if not hot:
        return False, []
    return True, [
        f"{cl.hot[t][0]} of {cl.mismatches} mismatches ({cl.hot[t][1]:.0%}) are {t}, against "
        f"{cl.hot[t][2]:.0%} of the store's refunds"
        for t in hot
    ]


def _vote(a: Answers) -> DiagnosisClass:
    integration = sum(
        (
            a["repeats"] is True,
            a["manual_touch"] is False,
            a["concentrated"] is False,
            a["delayed"] is True,
            a["reproducible"] is True,
        )
    )
    process = sum(
        (
            a["repeats"] is False,
            a["manual_touch"] is True,
            a["concentrated"] is True,
            a["delayed"] is False,
            a["reproducible"] is False,
        )
    )
    if integration - process >= 2:
        return "integration"
    if process - integration >= 2:
        return "process"
    return "undetermined"


def _headline(f: Finding) -> str:
    c = f.currency
    ids = ", ".join(
        x
        for x in (
            f"return {f.return_id}" if f.return_id else "",
            f"HQ ref {f.external_ref}" if f.external_ref else "",
            f"sale {f.sale_id}" if f.sale_id else "",
        )
        if x
    )
    amounts = []
    if f.store_amount is not None:
        amounts.append(f"store {fmt(f.store_amount, c)}")
    if f.hq_amount is not None:
        hq_c = f.entry.currency if f.entry else c
        amounts.append(f"HQ {f.hq_amount:f}" if hq_c != c else f"HQ {fmt(f.hq_amount, c)}")
    if f.delta is not None:
        amounts.append(f"delta {fmt(f.delta, c)}")
    what = f" ({f.detail})" if f.detail else ""
    return f"{f.kind}{what}: {ids}; {c} " + ", ".join(amounts)


def _one(f: Finding, ip: Found, pp: Found, answers: Answers, facts: list[str]) -> Diagnosis:
    edited = f.entry is not None and f.entry.edited_by is not None
    cls: DiagnosisClass
    if ip.pattern and pp.pattern:
        cls, pattern = "both", ip.pattern
    elif ip.pattern:
        cls, pattern = ("both" if edited else "integration"), ip.pattern
    elif pp.pattern:
        cls, pattern = "process", pp.pattern
    else:
        cls, pattern = _vote(answers), None
    ident = f.return_id or f.external_ref or f.key
    steps: list[str] = []
    for p in (ip.pattern, pp.pattern):
        if p is not None:
            steps += FIXES[p]
    if cls == "both" and not pp.pattern:
        steps += GENERIC_FIXES["process"]
    if not steps:
        steps = GENERIC_FIXES[cls]
    if pp.pattern and ip.pattern:
        facts.append(f"also {pp.pattern}: the integration fix comes first")
    evidence = [_headline(f), *ip.evidence, *pp.evidence, *facts]
    return Diagnosis(
        class_=cls,
        pattern=pattern,
        answers=answers,
        evidence=[e[:TEXT_MAX] for e in evidence[:EVIDENCE_MAX]],
        fix_sequence=[s.format(id=ident)[:TEXT_MAX] for s in steps[:FIX_STEPS_MAX]],
    )


def diagnose(
    findings: Sequence[Finding],
    *,
    store_refunds: Sequence[StoreRefund],
    history: Sequence[PriorMismatch] = (),
    settle_within: timedelta,
    base_rates: BaseRates | None = None,
) -> list[Finding]:
    """Each finding with its diagnosis. `store_refunds` gives the base rates (unless
    `base_rates` is passed) and the store-credit loops."""
    rates = base_rates if base_rates is not None else rates_of(store_refunds)
    loops = credit_loops(store_refunds)
    traits = [finding_traits(f) for f in findings]
    cl = clusters(traits, rates)
    hq_loops = hq_credit_loops(
        [f.entry for f in findings if f.store is None and f.entry is not None]
    )
    found = [(integration_pattern(f), process_pattern(f, loops, hq_loops)) for f in findings]
    patterns = [ip.pattern or pp.pattern for ip, pp in found]
    repeats = _Repeats(findings, patterns, history)
    out = []
    for f, (ip, pp), pattern, ts in zip(findings, found, patterns, traits, strict=True):
        rep, rep_facts = repeats.answer(f, pattern)
        touch, touch_facts = _manual_touch(f)
        conc, conc_facts = _concentrated(ts, cl)
        late, late_facts = _delayed(f, settle_within)
        answers = Answers(
            repeats=rep,
            manual_touch=touch,
            concentrated=conc,
            delayed=late,
            reproducible=ip.reproducible,
        )
        facts = rep_facts + touch_facts + conc_facts + late_facts
        out.append(replace(f, diagnosis=_one(f, ip, pp, answers, facts)))
    return out
