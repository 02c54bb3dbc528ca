"""The optional per-lane duplicate-scan window.

Some scanners read the same code twice when held over it, and an associate may pull the
trigger twice: within the lane's window the same data again is dropped. Each repeat restarts
the window, so a code held under a presentation scanner is reported once.
"""

from __future__ import annotations

from edge.lanes.settings import LanesSettings


class DuplicateWindow:
    def __init__(self, settings: LanesSettings) -> None:
        self._default_s = settings.duplicate_window_ms / 1000
        self._by_lane_s = {
            lane: ms / 1000 for lane, ms in settings.duplicate_window_ms_by_lane.items()
        }
        self._last: dict[str, tuple[str, float]] = {}

    def is_repeat(self, lane: str, data: str, now: float) -> bool:
        window = self._by_lane_s.get(lane, self._default_s)
        if window <= 0:
            return False
        previous = self._last.get(lane)
        self._last[lane] = (data, now)
        return previous is not None and previous[0] == data and now - previous[1] < window
