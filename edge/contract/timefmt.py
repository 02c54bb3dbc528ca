"""RFC 3339 UTC text, the one time format in the ledger and on the wire."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def utcnow() -> datetime:
    return datetime.now(UTC)
