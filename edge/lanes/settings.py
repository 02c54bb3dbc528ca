"""The `[lanes]` configuration: replay window, subscriber queues, duplicate-scan windows, grants."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

WindowMs = Annotated[int, Field(ge=0, le=60_000)]


class LanesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    replay_s: float = Field(
        10.0, ge=0, le=300, description="how long events wait for a register that was away"
    )
    replay_max_events: int = Field(1000, ge=1, le=100_000)
    subscriber_queue: int = Field(256, ge=1, le=10_000)
    duplicate_window_ms: WindowMs = Field(0, description="default for every lane")
    duplicate_window_ms_by_lane: dict[str, WindowMs] = Field(default_factory=dict)
    grant_ttl_s: float = Field(120.0, gt=0, le=3600)
