"""Prometheus's own checks (`promtool`, from Debian's prometheus package that `scripts/setup`
installs) and a parsed view of a scrape, for the /metrics and alert-rule tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _run(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    """`promtool check metrics` on a scrape (exit 0: no error and no lint warning)."""
    return _run("check", "metrics", stdin=text)


def check_rules(rules: Path) -> subprocess.CompletedProcess[str]:
    return _run("check", "rules", str(rules))


def run_rule_tests(tests: Path) -> subprocess.CompletedProcess[str]:
    """`promtool test rules`, run where the test file is (it names its rule files relatively)."""
    return _run("test", "rules", tests.name, cwd=tests.parent)
