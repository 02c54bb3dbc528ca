"""Assembling keyboard-wedge characters into complete scans.

A scanner ends a scan with Enter or Tab, or (configured without a suffix) simply stops
typing: then an inter-key timeout ends it. A partial read that never gets its terminator
is discarded after a while so it cannot prefix the next scan with garbage.

Pauses are measured twice. The kernel stamps every key event when it happens, so a gap
between two characters is judged by those stamps: a busy event loop that reads two scans
in one batch still sees the pause between them and neither merges nor splits them. The
loop's own clock only decides when to stop waiting for more keys (`deadline`).
"""

from __future__ import annotations

from typing import Literal

from edge.scan.payload import MAX_SCAN_CHARS

Terminator = Literal["enter", "tab", "none"]
_ENDS: dict[Terminator, str] = {"enter": "\r\n", "tab": "\t", "none": "\r\n"}
STALE_PARTIAL_S = 1.0


class ScanAssembler:
    """Collects characters; returns each complete scan as soon as it ends."""

    def __init__(
        self,
        terminator: Terminator,
        inter_key_timeout_s: float,
        stale_partial_s: float = STALE_PARTIAL_S,
    ) -> None:
        self._terminator = terminator
        self._ends = _ENDS[terminator]
        self._timeout = inter_key_timeout_s if terminator == "none" else stale_partial_s
        self._buffer: list[str] = []
        self._last_key = 0.0
        self._last_typed: float | None = None
        self._overflowing = False  # past MAX_SCAN_CHARS: drop up to the next terminator
        self.discarded = 0
        self.overflowed = 0

    def push(self, text: str, now: float, typed_at: float | None = None) -> list[str]:
        """Add what one key typed; `typed_at` is the kernel's stamp of that key event."""
        done: list[str] = []
        if (
            typed_at is not None
            and self._last_typed is not None
            and typed_at - self._last_typed > self._timeout
        ):
            # the scanner paused before this key: what came before has ended
            flushed = self.expire()
            if flushed is not None:
                done.append(flushed)
        self._last_key = now
        self._last_typed = typed_at
        for char in text:
            if char in self._ends:
                if self._buffer and not self._overflowing:
                    done.append("".join(self._buffer))
                self._reset()
            elif self._overflowing:
                continue
            elif len(self._buffer) >= MAX_SCAN_CHARS:
                self.overflowed += 1
                self._buffer.clear()
                self._overflowing = True  # its tail must not become a scan of its own
            else:
                self._buffer.append(char)
        return done

    def deadline(self) -> float | None:
        """When the pending partial read times out, or None when nothing is pending."""
        pending = self._buffer or self._overflowing
        return self._last_key + self._timeout if pending else None

    def expire(self) -> str | None:
        """The inter-key timeout passed: a scan (no-terminator mode) or a discarded partial."""
        partial = "" if self._overflowing else "".join(self._buffer)
        self._reset()
        if self._terminator == "none":
            return partial or None
        if partial:
            self.discarded += 1
        return None

    def discard(self) -> bool:
        """Drop the partial read (events were lost); True if there was one."""
        had = bool(self._buffer)
        if had:
            self.discarded += 1
        self._reset()
        return had

    def _reset(self) -> None:
        self._buffer.clear()
        self._overflowing = False
