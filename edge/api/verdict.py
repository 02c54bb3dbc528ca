"""One verdict on the gateway for store IT, and what to do about it, from its `Facts`.

`working` when nothing needs a look; `degraded` when refunds go on but something does (HQ
unreachable, the outbox above its high-water mark, a device down, reconciliation
mismatches open, the disk almost full, a critical alert); `failing` when the ledger cannot
write, so refunds are refused. Each problem comes with one line of advice. The page and
/readyz show the same verdict, in the same human formats (defined here): times in the
store's zone, ages as "3 min", sizes as "14.2 GB".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Literal

from edge.api.status_view import DeviceFacts, Facts

Level = Literal["working", "degraded", "failing"]
FULL_DISK_BYTES = 64 << 20  # below this a failed write is put down to the full disk


@dataclass(frozen=True)
class Problem:
    summary: str  # what is wrong, in a few words: "offline to HQ since 10:42"
    advice: str  # what to do about it


@dataclass(frozen=True)
class Verdict:
    level: Level
    problems: tuple[Problem, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())  # worth knowing, not a problem

    @property
    def headline(self) -> str:
        if not self.problems:
            return "Working"
        return f"{self.level.capitalize()}: " + "; ".join(p.summary for p in self.problems)

    @property
    def advice(self) -> list[str]:
        if not self.problems:
            return ["Nothing to do.", *self.notes]
        return [p.advice for p in self.problems] + list(self.notes)

    def as_json(self) -> dict[str, Any]:
        return {"level": self.level, "headline": self.headline, "advice": self.advice}


def judge(facts: Facts) -> Verdict:
    """One verdict from the facts: failing beats degraded beats working."""
    failing = _failing(facts)
    if failing:
        return Verdict("failing", tuple(failing))
    degraded = _degraded(facts)
    notes: list[str] = []
    if not facts.link.configured:
        notes.append("No HQ link is configured: refunds are recorded here only.")
    return Verdict("degraded" if degraded else "working", tuple(degraded), tuple(notes))


def _failing(facts: Facts) -> list[Problem]:
    disk = facts.disk
    if not facts.writable:
        summary = "the ledger cannot write"
        if facts.storage_failed_since is not None:
            summary += f" since {clock_text(facts.storage_failed_since, facts.zone, facts.now)}"
        if disk.free < FULL_DISK_BYTES:
            summary += f": the disk is full ({size_text(disk.free)} free)"
        else:
            summary += " (disk full?)"
        return [
            Problem(
                summary,
                "Refunds and sales are refused (503 storage-unavailable) and nothing is lost."
                f" Free space on {disk.path} ({size_text(disk.free)} free of"
                f" {size_text(disk.total)}) or check the disk; the gateway resumes by itself"
                " once it can write. The log has the error: journalctl -u edge-gateway.",
            )
        ]
    if not facts.ready:
        return [
            Problem(
                "a readiness check fails",
                "GET /readyz says which one; the log has more: journalctl -u edge-gateway.",
            )
        ]
    return []


def _degraded(facts: Facts) -> list[Problem]:
    found: list[Problem] = []
    link, outbox = facts.link, facts.outbox
    queued = 0 if outbox is None else outbox.refunds_queued
    if link.configured and not link.online:
        summary = "offline to HQ"
        if link.since is not None:
            summary += f" since {clock_text(link.since, facts.zone, facts.now)}"
        if queued:
            summary += f", {count_text(queued, 'refund')} queued"
        found.append(
            Problem(
                summary,
                "Refunds go on (card refunds within the offline limits) and wait in the"
                " outbox; nothing is lost, and they are sent when HQ answers again. Check the"
                " store's internet connection and the broker the gateway uses; edge-gateway"
                " doctor tests the connection.",
            )
        )
    if outbox is not None and facts.high_water is not None and outbox.pending > facts.high_water:
        found.append(
            Problem(
                f"{count_text(outbox.pending, 'event')} wait for HQ, above the high-water"
                f" mark of {facts.high_water:,}",
                "Nothing is dropped. If the link is online, HQ is slow to acknowledge: tell"
                " HQ operations.",
            )
        )
    down = [d for d in facts.devices if not d.up]
    if down:
        found.append(
            Problem(
                _devices_down(down, facts),
                "Check the cable and power of each device named (and, for a scanner, that it"
                " is set to USB keyboard or serial mode); the other lanes go on.",
            )
        )
    mismatches = facts.mismatches
    if mismatches is not None and mismatches.total:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(mismatches.by_kind.items()) if n)
        found.append(
            Problem(
                f"{count_text(mismatches.total, 'reconciliation mismatch', 'es')} open ({kinds})",
                "HQ and this store book some refunds differently: edge-gateway recon report"
                " shows each with its diagnosis; fix it, or accept it with edge-gateway recon"
                " accept.",
            )
        )
    if facts.disk.low:
        found.append(
            Problem(
                f"the disk is almost full ({size_text(facts.disk.free)} free)",
                f"Free space on {facts.disk.path} before writes fail: then refunds are refused.",
            )
        )
    found += [
        Problem(
            f"alert {a.alert}" + (f": {a.detail}" if a.detail else ""),
            "A critical alert is open; HQ was told. See the Alerts table below.",
        )
        for a in facts.alerts
        if a.severity == "critical"
    ]
    return found


def _devices_down(down: list[DeviceFacts], facts: Facts) -> str:
    if len(down) > 3:
        return f"{len(down)} devices down: " + ", ".join(d.id for d in down)
    parts = []
    for d in down:
        text = f"{d.name} (lane {d.lane}) {d.state}"
        if d.since is not None:
            text += f" since {clock_text(d.since, facts.zone, facts.now)}"
        parts.append(text)
    return ", ".join(parts)


# ---- human formats: the page and the verdict speak the same ------------------------------


def clock_text(at: datetime, zone: tzinfo | None, now: datetime) -> str:
    """A time in the store's zone: "10:42" today, "Mon 3 Nov 10:42" on another day."""
    local = at.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return local.strftime("%H:%M")
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def age_text(seconds: float) -> str:
    """An age as "45 s", "3 min", "2 h 5 min" or "3 days"."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 2 * 86400:
        hours, minutes = divmod(s // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{s // 86400} days"


def size_text(size: int) -> str:
    """Bytes as store IT reads them: "812 MB", "14.2 GB" (SI units, as `df -H`)."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{size} B"


def count_text(n: int, noun: str, plural: str = "s") -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}{plural}"
