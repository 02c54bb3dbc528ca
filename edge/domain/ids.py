"""Identifiers that travel with a refund: Return IDs, event ids and store credit codes."""

from __future__ import annotations

import base64
import os
import re
import secrets
import threading
from datetime import datetime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# RFC 4648 base32 and Crockford's alphabet map 5-bit groups alike, digit by digit.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1
# A ULID as text: 26 characters of Crockford's base32 (no I, L, O or U).
_ULID = "[0-9A-HJKMNP-TV-Z]{26}"
ULID_PATTERN = f"^{_ULID}$"
RETURN_ID = re.compile(rf"^R-(?P<store>[A-Za-z0-9_-]{{1,32}})-(?P<ulid>{_ULID})$")


class _UlidSource:
    """ULIDs (48-bit millisecond time, 80 random bits, Crockford base32), monotonic within a
    millisecond as the ULID spec's monotonic mode: a refund's ids are made on the writer's hot
    path, so this is a few integer operations and one C-level encode, not a library object."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def new(self, at: datetime) -> str:
        ms = int(at.timestamp() * 1000)
        with self._lock:
            if ms == self._last_ms and self._last_random < _RANDOM_MAX:
                random = self._last_random + 1
            else:
                random = int.from_bytes(os.urandom(10), "big")
            self._last_ms, self._last_random = ms, random
        value = (ms & 0xFFFF_FFFF_FFFF) << _RANDOM_BITS | random
        # 20 bytes are 32 base32 digits; the last 26 hold the 128 bits (the first 6 are zero).
        return base64.b32encode(value.to_bytes(20, "big"))[6:].translate(_TO_CROCKFORD).decode()


_ulids = _UlidSource()


def new_ulid(at: datetime) -> str:
    return _ulids.new(at)


def new_return_id(store_id: str, at: datetime) -> str:
    """The unified Return ID: store-scoped, time-ordered, unique across the fleet."""
    return f"R-{store_id}-{new_ulid(at)}"


def is_ulid(text: str) -> bool:
    return re.fullmatch(ULID_PATTERN, text) is not None


def is_return_id(code: str) -> bool:
    return RETURN_ID.match(code) is not None


def new_store_credit_code(prefix: str) -> str:
    """A printable code (60 random bits) with a check character against typos."""
    bits = int.from_bytes(secrets.token_bytes(8), "big") >> 4
    body = "".join(_CROCKFORD[(bits >> (5 * i)) & 31] for i in range(12))
    check = _CROCKFORD[sum(_CROCKFORD.index(c) * (i + 1) for i, c in enumerate(body)) % 32]
    return f"{prefix}-{body[0:4]}-{body[4:8]}-{body[8:12]}{check}"
