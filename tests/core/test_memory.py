"""Start-up garbage is collected, the survivors frozen, and freed heap handed back (glibc)."""

from __future__ import annotations

import subprocess
import sys

from tests.core.daemon import ROOT

PROBE = """
import gc
from edge.memory import release_heap, release_startup_garbage
garbage = [[n] for n in range(100_000)]
del garbage
release_startup_garbage()
print(gc.get_freeze_count() > 0, release_heap())
"""


def test_release_freezes_the_survivors_and_trims_the_heap() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]  # glibc: malloc_trim is there
