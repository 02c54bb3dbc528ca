"""What one check found: a verdict, what was seen, and what to do about it.

Verdicts, from good to bad: PASS, SKIP (could not be checked here, and why), WARN (works
now but needs attention), FAIL (something the gateway needs is broken). The exit code of
`doctor` is 2 if anything failed, 1 if anything warned, else 0; SKIP does not count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Verdict(Enum):
    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    SKIP = "SKIP"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    verdict: Verdict
    check: str
    detail: str
    action: str = ""  # what to do; empty when there is nothing to do
    data: dict[str, Any] = field(default_factory=dict)  # for --json readers

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "action": self.action,
        }
        if self.data:
            out["data"] = self.data
        return out


def passed(check: str, detail: str, **data: Any) -> Finding:
    return Finding(Verdict.PASS, check, detail, data=data)


def skipped(check: str, detail: str, action: str = "", **data: Any) -> Finding:
    return Finding(Verdict.SKIP, check, detail, action, data=data)


def warned(check: str, detail: str, action: str, **data: Any) -> Finding:
    return Finding(Verdict.WARN, check, detail, action, data=data)


def failed(check: str, detail: str, action: str, **data: Any) -> Finding:
    return Finding(Verdict.FAIL, check, detail, action, data=data)


EXIT_OK = 0
EXIT_WARNINGS = 1
EXIT_FAILURES = 2


def exit_code(findings: list[Finding]) -> int:
    verdicts = {f.verdict for f in findings}
    if Verdict.FAIL in verdicts:
        return EXIT_FAILURES
    if Verdict.WARN in verdicts:
        return EXIT_WARNINGS
    return EXIT_OK


_COLOURS = {
    Verdict.PASS: "\033[32m",
    Verdict.SKIP: "\033[2m",
    Verdict.WARN: "\033[33m",
    Verdict.FAIL: "\033[1;31m",
}
_RESET = "\033[0m"


def render(findings: list[Finding], *, colour: bool) -> list[str]:
    """One line per finding: `VERDICT  check  detail — what to do`, names aligned."""
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for f in findings:
        verdict = f.verdict.value
        if colour:
            verdict = f"{_COLOURS[f.verdict]}{verdict}{_RESET}"
        text = f"{f.detail} \u2014 {f.action}" if f.action else f.detail
        lines.append(f"{verdict}  {f.check.ljust(width)}  {text}")
    return lines
