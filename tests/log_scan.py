"""Look for the secrets the tests handle in log files (the session-wide check in conftest.py).

What counts as a secret here: anything that looks like a card number (the product's own
finder, edge.logs.card_number_spans), a JWT such as the gateway's access tokens, a client
secret (43 characters of base64url, as `secrets.token_urlsafe(32)` makes them), HTTP Basic
credentials of a gateway client, and the PINs, badge UIDs and broker passwords written in
the test sources, collected from them so the list stays true as tests are added.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.logs import card_number_spans

TESTS = Path(__file__).resolve().parent

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
# secrets.token_urlsafe(32): 43 base64url characters, nothing of the kind on either side
_CLIENT_SECRET = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
# "Basic " + base64 of "cl_<id>:<secret>": "cl_" encodes as "Y2xf"
_BASIC = re.compile(r"Basic\s+Y2xf[A-Za-z0-9+/=]{16,}")

# Where the test sources write PINs, badge UIDs and passwords.
_PIN_SOURCES = (
    re.compile(r"""(?i)\b\w*pin\w*\s*(?::\s*[\w| ]+)?=\s*["'](\d{6,12})["']"""),  # X_PIN = "..."
    re.compile(r"""(?i)["']pin["']\s*:\s*["'](\d{6,12})["']"""),  # {"pin": "..."}
    re.compile(r"""(?i)b?["']PIN[^"']*["']\s*,\s*["'](\d{6,12})["']"""),  # answer(b"PIN: ", "...")
)
_BADGE_SOURCES = (
    re.compile(r"""(?i)\b\w*badge\w*\s*=\s*["']([0-9A-F]{8,20})["']"""),  # BADGE = "..."
    # badge, tag = "...", "..."
    re.compile(r"""(?i)\bbadge\w*\s*,\s*\w+\s*=\s*["']([0-9A-F]{8,20})["']"""),
    re.compile(r"""["']--badge["']\s*,\s*["']([0-9A-F]{8,20})["']"""),
)
_PASSWORD_SOURCES = (re.compile(r"""(?i)\bpassword\s*=\s*["']([^"'\s]{6,})["']"""),)


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    kind: str
    masked: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind} {self.masked}"


def mask(secret: str) -> str:
    """Enough to tell which secret it was, never the secret: `eyJh…(180 chars)`; of a short
    one (a PIN, a badge UID) only its length."""
    shown = secret[:4] if len(secret) >= 16 else ""
    return f"{shown}…({len(secret)} chars)"


def known_secrets(sources: Iterable[Path]) -> dict[str, str]:
    """PINs, badge UIDs and passwords written in `sources`, each with what it is.

    PINs of one repeated digit (a wrong PIN such as 000000) are left out: runs of zeros are
    everywhere in logs (fractions of seconds) and no manager can have such a PIN.
    """
    found: dict[str, str] = {}
    for source in sources:
        text = source.read_text(errors="replace")
        for kind, patterns in (
            ("PIN", _PIN_SOURCES),
            ("badge UID", _BADGE_SOURCES),
            ("password", _PASSWORD_SOURCES),
        ):
            for pattern in patterns:
                for match in pattern.finditer(text):
                    value = match.group(1)
                    if kind == "PIN" and len(set(value)) == 1:
                        continue
                    found[value.upper() if kind == "badge UID" else value] = kind
    return found


def source_files() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


class SecretScanner:
    def __init__(self, known: dict[str, str]) -> None:
        self.known = known
        # each known secret as a whole token: not inside a longer run of its own characters
        self._known = [
            (
                re.compile(
                    rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])",
                    re.IGNORECASE if kind == "badge UID" else 0,
                ),
                kind,
            )
            for value, kind in known.items()
        ]

    def scan_line(self, line: str) -> Iterator[tuple[str, str]]:
        """(kind, secret) for each secret in `line`."""
        for start, end in card_number_spans(line):
            yield "card number", line[start:end]
        for match in _JWT.finditer(line):
            yield "JWT", match.group()
        for match in _BASIC.finditer(line):
            yield "client credentials", match.group()
        for match in _CLIENT_SECRET.finditer(line):
            value = match.group()
            if _looks_random(value):
                yield "client secret", value
        for pattern, kind in self._known:
            for match in pattern.finditer(line):
                yield kind, match.group()

    def scan_file(self, path: Path) -> list[Finding]:
        findings = []
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                findings.extend(
                    Finding(path, number, kind, mask(secret))
                    for kind, secret in self.scan_line(line)
                )
        return findings


def _looks_random(value: str) -> bool:
    """A token_urlsafe value has upper and lower case letters and digits; names and
    paths of 43 characters (`test_a_very_long_name...`) do not."""
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


def log_files(root: Path) -> list[Path]:
    """Every `*.log` file under `root` (the daemons' logs tests write under tmp_path)."""
    return sorted(p for p in root.rglob("*.log") if p.is_file())
