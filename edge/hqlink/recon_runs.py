"""One reconciliation run, from reading the ledger to applying what differs: a digest from
HQ (checked whole first) or the checkpoint. Plain async functions of the ledger and the
`[recon]` settings, so the run is the same with or without an HQ link; the `Reconciler`
(edge/hqlink/recon.py) takes turns between them, publishes and alerts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from edge.contract.payloads import Malformed, parse
from edge.contract.recon import Digest
from edge.domain.money import MoneyError, currency_exponent
from edge.domain.recon import (
    PriorMismatch,
    StoreRefund,
    base_rates,
    compare,
    entry_from_wire,
    unconfirmed,
)
from edge.errors import HqLinkError
from edge.hqlink.settings import ReconSettings
from edge.ledger import recon, recon_apply, recon_refunds
from edge.ledger.ledger import Ledger
from edge.ledger.recon_apply import ApplyResult, DigestApplied, Run

ALERTS_MAX = 200  # open mismatch alerts at most: health lists every open alert
PERIOD_MAX = timedelta(days=366)  # one digest's reach into the ledger
HISTORY = timedelta(days=90)  # earlier mismatches a run compares with ("repeats")
BASE_WINDOW = timedelta(days=7)  # the checkpoint's base rates: the week's refunds


class DigestRefused(HqLinkError):
    """A digest the gateway will not apply; `reason` is the counted slug."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class _Inputs:
    """What one run reads from the ledger before it compares."""

    refunds: list[StoreRefund]
    history: list[PriorMismatch]
    start: datetime
    checked: int = 0
    rates: list[StoreRefund] = field(default_factory=list)
    sold: dict[tuple[str, str], int] = field(default_factory=dict)


async def checkpoint_once(ledger: Ledger, settings: ReconSettings, now: datetime) -> ApplyResult:
    """One checkpoint run, applied: every refund HQ has not decided `settle_within` after
    it was made. Needs no HQ link (the caller publishes the report, or not)."""
    within = timedelta(seconds=settings.settle_within_s)
    cutoff = now - within

    def read(conn: recon.Connection) -> _Inputs:
        state = recon.checkpoint_state(conn)
        pending = recon_refunds.pending_refunds(conn, cutoff)
        start = cutoff - timedelta(seconds=settings.checkpoint_interval_s)
        if state is not None and state.last_cutoff is not None:
            start = state.last_cutoff
        if pending:
            start = min(start, pending[0].created_at)
        start = min(start, cutoff - timedelta(milliseconds=1))
        return _Inputs(
            refunds=pending,
            history=recon.history(conn, now - HISTORY),
            start=start,
            checked=recon_refunds.count_refunds(conn, start, cutoff),
            rates=recon_refunds.store_refunds(conn, cutoff - BASE_WINDOW, cutoff),
        )

    got = await ledger.read(read)
    older = (r for r in got.refunds if r.created_at < cutoff - BASE_WINDOW)
    rates = base_rates([*got.rates, *older])  # the week's refunds, and older pending ones
    findings = unconfirmed(got.refunds, now, within, history=got.history, base_rates=rates)
    in_period = sum(1 for f in findings if got.start <= f.occurred_at < cutoff)
    run = Run(
        scope="checkpoint",
        report_id=recon_apply.new_report_id(now),
        store_id=ledger.origin.store_id,
        gateway_id=ledger.origin.gateway_id,
        period_from=got.start,
        period_to=cutoff,
        at=now,
        checked=got.checked,
        matched=max(0, got.checked - in_period),
        alert_above=settings.alert_threshold,
        alerts_max=ALERTS_MAX,
        next_due_at=now + timedelta(seconds=settings.checkpoint_interval_s),
    )
    return await ledger.write(lambda conn: recon_apply.apply_findings(conn, findings, run))


def check_digest(payload: bytes, settings: ReconSettings, store_id: str) -> Digest:
    """The digest, or DigestRefused naming why it cannot be applied: too big (checked
    before parsing), malformed, too many entries, a period too long, an entry outside its
    period, another store's refund, or a currency nobody can refund in."""
    if len(payload) > settings.digest_max_bytes:
        raise DigestRefused("too-large", f"{len(payload)} bytes > {settings.digest_max_bytes}")
    try:
        digest = parse(Digest, payload)
    except Malformed as exc:
        raise DigestRefused("malformed", str(exc)) from None
    if len(digest.refunds) > settings.digest_max_entries:
        limit = settings.digest_max_entries
        raise DigestRefused("too-many-entries", f"{len(digest.refunds)} entries > {limit}")
    if digest.to - digest.from_ > PERIOD_MAX:
        raise DigestRefused("period-too-long", f"more than {PERIOD_MAX.days} days")
    own = f"R-{store_id}-"
    for n, entry in enumerate(digest.refunds):
        where = f"refunds[{n}] ({entry.external_ref})"
        if not digest.from_ <= entry.created_at < digest.to:
            raise DigestRefused("entry-outside-period", f"{where} was created outside it")
        if entry.return_id is not None and not entry.return_id.startswith(own):
            raise DigestRefused("other-store", f"{where} is not a refund of store {store_id}")
        try:
            currency_exponent(entry.currency)
        except MoneyError as exc:
            raise DigestRefused("bad-currency", f"{where}: {exc}") from None
    return digest


async def digest_once(
    ledger: Ledger,
    settings: ReconSettings,
    digest: Digest,
    fingerprint: str,
    now: datetime,
) -> ApplyResult:
    """Compare one checked digest with the ledger and apply what differs. The ledger is
    read for [from, to), but not past the time HQ made the digest: a refund made since
    cannot be in it yet."""
    entries = [entry_from_wire(e) for e in digest.refunds]
    until = max(digest.from_, min(digest.to, digest.generated_at, now))
    named = {e.return_id for e in entries if e.return_id is not None}
    references = {ref for e in entries if (ref := e.reference) is not None}

    def read(conn: recon.Connection) -> _Inputs:
        period = recon_refunds.store_refunds(conn, digest.from_, until)
        held = {r.return_id for r in period}
        return _Inputs(
            refunds=period + recon_refunds.named_refunds(conn, named - held),
            history=recon.history(conn, now - HISTORY),
            start=digest.from_,
            sold=recon_refunds.sold_units(conn, references),
        )

    got = await ledger.read(read)
    within = timedelta(seconds=settings.settle_within_s)
    findings = await asyncio.to_thread(
        partial(
            compare,
            got.refunds,
            entries,
            period_from=digest.from_,
            period_to=until,
            now=now,
            settle_within=within,
            history=got.history,
            sold_units=got.sold,
        )
    )
    hq_only = sum(1 for f in findings if f.store is None)
    checked = len(got.refunds) + hq_only
    subjects = {f.return_id if f.store is not None else f"ext:{f.external_ref}" for f in findings}
    run = Run(
        scope="digest",
        report_id=recon_apply.new_report_id(now),
        store_id=ledger.origin.store_id,
        gateway_id=ledger.origin.gateway_id,
        period_from=digest.from_,
        period_to=digest.to,
        at=now,
        checked=checked,
        matched=max(0, checked - len(subjects)),
        alert_above=settings.alert_threshold,
        digest=DigestApplied(digest.digest_id, fingerprint, digest.generated_at, len(entries)),
        compared_to=until,
        alerts_max=ALERTS_MAX,
    )
    return await ledger.write(lambda conn: recon_apply.apply_findings(conn, findings, run))
