"""Giving back what start-up and big transient work leave behind, so an idle gateway stays small.

Start-up builds far more objects than the running daemon keeps (configuration parsing,
pydantic schema building, migrations, imports). `release_startup_garbage` collects them once,
moves the survivors into the garbage collector's permanent generation (`gc.freeze`: they
are never scanned again, so later collections neither walk nor touch their pages), and asks
glibc to return the freed heap to the kernel (`malloc_trim(0)`: CPython's allocator frees
memory to malloc, which keeps it mapped otherwise). `release_heap` does the last step alone,
after a burst such as draining a large outbox backlog. Both are skipped where glibc is
absent (musl, macOS): there they are plain collections.
"""

from __future__ import annotations

import ctypes
import gc
import logging
from collections.abc import Callable
from functools import cache

log = logging.getLogger(__name__)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, looked up among the symbols the interpreter already has."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc: no malloc_trim to call
        return None
    return trim


def release_heap() -> bool:
    """Return freed heap memory to the kernel; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def release_startup_garbage() -> None:
    """Once, when the daemon is ready: collect, freeze the survivors, trim the heap."""
    gc.collect()
    gc.freeze()
    if not release_heap():
        log.debug("malloc_trim is not available; freed heap memory stays with the process")
