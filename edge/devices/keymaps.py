"""Keyboard layouts for wedge scanners, compiled by libxkbcommon from xkb-data (no X server).

A wedge scanner types the key *positions* that produce its characters on the layout it was
configured for; decoding with the same layout gives the characters back. Compiling a keymap
reads xkb-data files, so callers run `load_keymap` off the event loop; results are cached.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from xkbcommon import xkb

from edge.errors import DeviceError

log = logging.getLogger(__name__)


class KeymapError(DeviceError):
    """The configured layout/variant is not known to xkb-data."""


def _xkb_log(_context: Any, level: Any, message: str) -> None:
    log.debug("xkbcommon (%s): %s", level, message.rstrip())


@functools.cache
def _context() -> xkb.Context:
    context = xkb.Context()
    context.set_log_fn(_xkb_log)
    return context


@functools.cache
def load_keymap(layout: str, variant: str = "") -> xkb.Keymap:
    """The compiled keymap for a layout; raises KeymapError for an unknown layout/variant."""
    try:
        return _context().keymap_new_from_names(layout=layout, variant=variant or None)
    except xkb.XKBError as exc:
        msg = f"xkb cannot compile layout {layout!r} variant {variant!r}: {exc}"
        raise KeymapError(msg) from exc
