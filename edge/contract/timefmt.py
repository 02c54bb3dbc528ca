"""RFC 3339 UTC text, the one time format in the ledger and on the wire; and lengths of time
as people read them in logs, status lines and pages."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def utcnow() -> datetime:
    return datetime.now(UTC)


def duration(seconds: float | None) -> str:
    """A readable length of time: 12 s, 5 min, 3 h 4 min, 2 d 3 h (an em dash for unknown)."""
    if seconds is None:
        return "\u2014"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
