"""What a fresh checkout runs on: benchmarks without the test code, a clean package build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.daemon import ROOT

BENCHMARKS = sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))
# Importing any of these from a benchmark fails in this check, as it would without them.
TEST_ONLY = ("tests", "pytest", "_pytest", "hypothesis", "pytest_asyncio", "pytest_aiohttp")


def test_every_benchmark_imports_without_the_tests_or_test_extras() -> None:
    assert len(BENCHMARKS) >= 4, BENCHMARKS
    code = (
        "import importlib, sys\n"
        f"sys.modules.update(dict.fromkeys({TEST_ONLY!r}))\n"
        f"for name in {BENCHMARKS!r}:\n"
        "    importlib.import_module(f'bench.{name}')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    ("bench", "args", "prints"),
    [
        ("bench_scan_latency", ["--scans", "100"], "raw events -> WebSocket scan"),
        ("bench_refunds", ["--seconds", "0.2"], "gateway API, 64 concurrent clients"),
        ("bench_relay_drain", ["--events", "200"], "outbox drained end to end"),
        ("bench_fleet", ["--gateways", "10", "--seconds", "1"], "killed at once"),
        ("bench_writer_cpu", ["--refunds", "640"], "writer thread CPU per refund"),
        ("bench_slow_fsync", ["--seconds", "1", "--delay-ms", "2"], "same, no delay"),
        ("bench_ledger_size", ["--seconds", "1", "--sizes", "50,100"], "100 pending, 100 sales"),
        ("bench_idle", ["--seconds", "1"], "idle RSS, no devices"),
        ("bench", ["--quick", "--only", "writer_cpu"], "writer thread CPU per refund"),
    ],
)
def test_each_benchmark_runs_briefly_on_the_package_alone(
    bench: str, args: list[str], prints: str, tmp_path: Path
) -> None:
    if bench == "bench_relay_drain":
        args = [*args, "--dir", str(tmp_path)]
    code = (
        "import runpy, sys\n"
        f"sys.modules.update(dict.fromkeys({TEST_ONLY!r}))\n"
        f"sys.argv = ['{bench}', *{args!r}]\n"
        f"runpy.run_module('{bench if bench == 'bench' else 'bench.' + bench}',"
        " run_name='__main__')\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=170,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert prints in out.stdout, out.stdout


def test_the_license_is_an_spdx_string_that_setuptools_takes_without_a_warning() -> None:
    """A TOML table here makes setuptools print a deprecation warning on every install."""
    import tomllib  # noqa: PLC0415

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    floor = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    assert floor == ["setuptools>=77"], "SPDX license strings need setuptools 77 or later"
