"""Reconciliation on the gateway (contract v1.1): HQ's digests on `recon/digest`, the
checkpoint that needs no digest, reports on `recon/report`, and one alert per mismatch.

A digest is checked whole before anything is written: its size before it is parsed, then
its shape, its limits, its period and whether every entry can be this store's. A refused
digest is logged and counted by reason and leaves the ledger as it was; a digest seen
before gets the report it got then. Digests and checkpoint runs take turns (one lock), so
two runs never judge the same mismatch at once; the comparison itself runs off the event
loop. Reports are stored before they are sent, and sent again on the next connect if the
broker was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edge.contract.health import ReconHealth
from edge.contract.recon import DIAGNOSIS_CLASSES, MISMATCH_KINDS
from edge.contract.timefmt import utcnow
from edge.contract.topics import GatewayTopics
from edge.domain.errors import DomainError
from edge.errors import MqttLinkError, StorageError
from edge.hqlink.alerts import Alerts
from edge.hqlink.recon_runs import (
    ALERTS_MAX,
    DigestRefused,
    check_digest,
    checkpoint_once,
    digest_once,
)
from edge.hqlink.settings import ReconSettings
from edge.ledger import recon, recon_apply
from edge.ledger.ledger import Ledger
from edge.ledger.recon import MismatchRow
from edge.ledger.recon_apply import ApplyResult
from edge.mqtt.client import MqttClient

# `checkpoint_once` too: the operator CLI and the composition root run it without a link
__all__ = ["ALERT", "WITHHELD", "ReconMetrics", "Reconciler", "checkpoint_once"]

log = logging.getLogger(__name__)

ALERT = "recon-mismatch"  # one per mismatch: subject = mismatch_id
WITHHELD = "recon-alerts-withheld"  # more mismatches call for an alert than may be open
QUEUE_MAX = 8  # digests waiting; HQ sends one per period, a few when it splits one
RETRY = timedelta(seconds=60)  # a checkpoint the ledger could not run, tried again
SENT_KEPT = 1000  # report ids remembered as sent, so a connect never sends one twice


class Reconciler:
    """Owned by the HQ link: takes digests from it, runs the checkpoint on schedule and on
    demand, publishes reports and keeps one alert per mismatch in step with the ledger."""

    def __init__(
        self,
        *,
        client: MqttClient,
        topics: GatewayTopics,
        settings: ReconSettings,
        ledger: Ledger,
        alerts: Alerts,
        errors: Counter[str],
    ) -> None:
        self._client = client
        self._out_topic = topics.recon_report
        self._settings = settings
        self._ledger = ledger
        self._alerts = alerts
        self._errors = errors
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUE_MAX)
        self._turn = asyncio.Lock()  # one run at a time: digests and checkpoints
        self._rescheduled = asyncio.Event()
        self._next_due: datetime | None = None
        self._applied = 0  # runs whose alerts were raised; health syncs only between them
        self._sent: dict[str, None] = {}  # reports handed to the broker lately, in order
        self.rejected: Counter[str] = Counter()
        self.counts = recon.OpenCounts({}, {}, 0)
        self.reports_published = 0
        self.alerts_raised = 0
        self.metrics = ReconMetrics(self)

    # ---- digests -------------------------------------------------------------------

    def submit(self, payload: bytes) -> None:
        """From the link's inbox: queue a digest (its size is checked first, before it is
        parsed or held any longer); never blocks, never raises."""
        if len(payload) > self._settings.digest_max_bytes:
            limit = self._settings.digest_max_bytes
            self._refuse(DigestRefused("too-large", f"{len(payload)} bytes > {limit}"))
            return
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            self._refuse(DigestRefused("busy", f"{QUEUE_MAX} digests already wait"))

    async def run(self) -> None:
        """The digest loop: applies digests in turn."""
        while True:
            payload = await self._queue.get()
            await self.handle_digest(payload)

    async def handle_digest(self, payload: bytes) -> str | None:
        """Check, compare, apply and answer one digest; its report id, None if refused."""
        try:
            digest = check_digest(payload, self._settings, self._ledger.origin.store_id)
        except DigestRefused as exc:
            self._refuse(exc)
            return None
        fingerprint = hashlib.sha256(payload).hexdigest()
        async with self._turn:
            now = utcnow()  # after waiting for our turn
            try:
                seen = await self._ledger.read(
                    lambda conn: recon.digest_applied(conn, digest.digest_id)
                )
                if seen is not None:
                    return await self._replayed(digest.digest_id, fingerprint, *seen)
                result = await digest_once(self._ledger, self._settings, digest, fingerprint, now)
            except StorageError as exc:
                self._errors["storage_errors"] += 1
                log.error("digest %s not applied: %s", digest.digest_id, exc)
                return None
            except DomainError as exc:  # the comparison refused what the digest holds
                self._refuse(DigestRefused("unusable", str(exc)))
                return None
            await self._applied_run(result)
        log.info(
            "digest %s: %d entries, report %s (%d new, %d reopened, %d resolved)",
            digest.digest_id,
            len(digest.refunds),
            result.report_id,
            len(result.opened),
            len(result.reopened),
            len(result.resolved),
        )
        return result.report_id

    async def _replayed(
        self, digest_id: str, fingerprint: str, seen_fingerprint: str, report_id: str
    ) -> str | None:
        if seen_fingerprint != fingerprint:
            self._refuse(DigestRefused("digest-id-reused", f"{digest_id} came with another body"))
            return None
        self._errors["recon_digest_replayed"] += 1
        stored = await self._ledger.read(lambda conn: recon.stored_report(conn, report_id))
        log.info("digest %s was applied before: its report %s sent again", digest_id, report_id)
        if stored is not None:
            await self._publish([(stored.report_id, stored.body.encode())], again=True)
        return report_id

    def _refuse(self, exc: DigestRefused) -> None:
        self.rejected[exc.reason] += 1
        self._errors["recon_digest_rejected"] += 1
        log.warning("refused a reconciliation digest: %s", exc)

    # ---- the checkpoint ------------------------------------------------------------

    async def run_schedule(self) -> None:
        """The checkpoint loop: due times are kept in the ledger, so a run that fell due
        while the gateway was down runs at once after it starts."""
        while True:
            try:
                if self._next_due is None:
                    state = await self._ledger.read(recon.checkpoint_state)
                    self._next_due = utcnow() if state is None else state.next_due_at
                wait = (self._next_due - utcnow()).total_seconds()
                if wait <= 0:
                    await self.run_checkpoint()
                    continue
            except StorageError as exc:
                self._errors["storage_errors"] += 1
                log.error("reconciliation checkpoint not run: %s", exc)
                self._next_due = utcnow() + RETRY
                wait = RETRY.total_seconds()
            self._rescheduled.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._rescheduled.wait()

    async def run_checkpoint(self) -> str:
        """Run the checkpoint now (also on schedule); returns its report's id. Raises
        StorageError when the ledger cannot be read or written."""
        async with self._turn:
            now = utcnow()
            result = await checkpoint_once(self._ledger, self._settings, now)
            # as stored by the run: the schedule a restart reads back
            self._next_due = now + timedelta(seconds=self._settings.checkpoint_interval_s)
            self._rescheduled.set()
            await self._applied_run(result)
        log.info(
            "reconciliation checkpoint: report %s (%d new, %d reopened, %d resolved)",
            result.report_id,
            len(result.opened),
            len(result.reopened),
            len(result.resolved),
        )
        return result.report_id

    # ---- after a run ---------------------------------------------------------------

    async def _applied_run(self, result: ApplyResult) -> None:
        """Alerts, then the report; both after the run is durable."""
        self._applied += 1
        for change in result.raise_alerts:
            self._alerts.raise_(ALERT, "warning", change.detail, change.mismatch_id)
            self.alerts_raised += 1
        for mismatch_id in result.clear_alerts:
            self._alerts.clear(ALERT, mismatch_id)
        if result.withheld:
            self._alerts.raise_(
                WITHHELD,
                "warning",
                f"{result.withheld} more mismatches call for an alert; {ALERTS_MAX} are open"
                f" already, so these are only in report {result.report_id}",
            )
        else:
            self._alerts.clear(WITHHELD)
        if result.reopened:
            self._errors["recon_mismatches_reopened"] += len(result.reopened)
        await self._publish([(result.report_id, result.payload)])
        with contextlib.suppress(StorageError):  # figures only: the next health reads again
            self.counts = await self._ledger.read(recon.open_counts)

    async def publish_unpublished(self) -> None:
        """On connect: send the reports made while the broker was away."""
        try:
            stored = await self._ledger.read(recon.unpublished_reports)
        except StorageError as exc:
            log.error("unsent reconciliation reports not read: %s", exc)
            return
        await self._publish([(r.report_id, r.body.encode()) for r in stored])

    async def _publish(self, reports: Iterable[tuple[str, bytes]], *, again: bool = False) -> None:
        """Hand reports to the broker, each once (a connect while a run publishes must not
        send its report twice; `again` is for a replayed digest), and mark them sent."""
        sent: list[str] = []
        for report_id, payload in reports:
            if report_id in self._sent and not again:
                continue
            try:
                self._client.publish(self._out_topic, payload, qos=1)
            except MqttLinkError:
                log.info("report %s kept; it is sent when the broker is back", report_id)
                break
            self._sent[report_id] = None
            while len(self._sent) > SENT_KEPT:
                del self._sent[next(iter(self._sent))]
            sent.append(report_id)
            self.reports_published += 1
        if sent:
            at = utcnow()
            try:
                await self._ledger.write(lambda conn: recon_apply.mark_published(conn, sent, at))
            except StorageError as exc:  # sent again after a restart: HQ de-duplicates
                log.error("reports %s sent but not marked: %s", ", ".join(sent), exc)

    # ---- operators and health ------------------------------------------------------

    async def accept(self, mismatch_id: str, who: str, reason: str) -> MismatchRow:
        """Accept an open mismatch (audited with who and why) and clear its alert."""
        row, clear = await self._ledger.write(
            lambda conn: recon.accept(conn, mismatch_id, who, reason, utcnow())
        )
        if clear:
            self._alerts.clear(ALERT, mismatch_id)
        self._applied += 1
        with contextlib.suppress(StorageError):
            self.counts = await self._ledger.read(recon.open_counts)
        return row

    async def health(self) -> ReconHealth:
        """Figures for the health message; also clears the alerts of mismatches accepted
        or resolved elsewhere (the operator CLI writes the ledger directly)."""
        before = self._applied

        def read(conn: recon.Connection) -> tuple[recon.OpenCounts, datetime | None, set[str]]:
            return recon.open_counts(conn), recon.latest_report_at(conn), recon.alerting_ids(conn)

        self.counts, last_report_at, alerting = await self._ledger.read(read)
        if self._applied == before:  # no run raised an alert while we read
            for alert in self._alerts.open():
                if alert.alert == ALERT and alert.subject not in alerting:
                    self._alerts.clear(ALERT, alert.subject)
        return ReconHealth(
            open_mismatches=self.counts.total,
            by_kind=self.counts.by_kind,
            by_class=self.counts.by_class,
            reopened_total=self.counts.reopened_total,
            last_report_at=last_report_at,
            next_checkpoint_at=self._next_due,
        )

    async def restore_alerts(self) -> None:
        """At start: list again the alerts of open mismatches HQ was sent before (without
        sending them again), so health shows them from the first message on."""
        try:
            rows = await self._ledger.read(recon.alerting)
            self.counts = await self._ledger.read(recon.open_counts)
        except StorageError as exc:
            log.error("open reconciliation alerts not read: %s", exc)
            return
        for row in rows:
            self._alerts.restore(ALERT, "warning", describe(row), row.mismatch_id)


def describe(row: MismatchRow) -> str:
    """An alert's detail for a stored mismatch (no card data: refs and amounts only)."""
    amounts = [
        f"{name} {value:f}"
        for name, value in (
            ("store", row.store_amount),
            ("HQ", row.hq_amount),
            ("delta", row.delta),
        )
        if value is not None
    ]
    subject = row.return_id or row.external_ref or "?"
    return f"{row.kind} {subject} ({row.currency} {', '.join(amounts)}): {row.class_}"


class ReconMetrics:
    """Reconciliation's figures for /metrics, read from the reconciler's counters (a
    custom collector: the open counts are refreshed with each run and health message)."""

    def __init__(self, owner: Reconciler) -> None:
        self._owner = owner

    def collect(self) -> Iterable[Metric]:
        o = self._owner
        kinds = GaugeMetricFamily(
            "edge_recon_open_mismatches", "Open reconciliation mismatches, by kind", labels=["kind"]
        )
        for kind in MISMATCH_KINDS:
            kinds.add_metric([kind], o.counts.by_kind.get(kind, 0))
        classes = GaugeMetricFamily(
            "edge_recon_open_mismatches_by_class",
            "Open reconciliation mismatches, by diagnosis class",
            labels=["class"],
        )
        for class_ in DIAGNOSIS_CLASSES:
            classes.add_metric([class_], o.counts.by_class.get(class_, 0))
        reopened = CounterMetricFamily(
            "edge_recon_mismatches_reopened",
            "Mismatches found again after they were resolved or accepted (ever)",
        )
        reopened.add_metric([], o.counts.reopened_total)
        rejected = CounterMetricFamily(
            "edge_recon_digests_rejected",
            "Reconciliation digests refused since start, by reason",
            labels=["reason"],
        )
        for reason, n in sorted(o.rejected.items()):
            rejected.add_metric([reason], n)
        reports = CounterMetricFamily(
            "edge_recon_reports_published", "Reconciliation reports handed to the broker"
        )
        reports.add_metric([], o.reports_published)
        alerts = CounterMetricFamily(
            "edge_recon_alerts_raised", "Mismatch alerts raised since start (reopened included)"
        )
        alerts.add_metric([], o.alerts_raised)
        yield from (kinds, classes, reopened, rejected, reports, alerts)
