"""How identifiers look on the wire: a ULID is 26 characters of Crockford's base32."""

from __future__ import annotations

import re

# A ULID as text: 26 characters of Crockford's base32 (no I, L, O or U).
ULID = "[0-9A-HJKMNP-TV-Z]{26}"
ULID_PATTERN = f"^{ULID}$"
_ULID_RE = re.compile(ULID_PATTERN)


def is_ulid(text: str) -> bool:
    return _ULID_RE.fullmatch(text) is not None
