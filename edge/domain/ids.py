"""Identifiers that travel with a refund: Return IDs, event ids and store credit codes."""

from __future__ import annotations

import os
import re
import secrets
import threading
from datetime import datetime

from edge.contract.ids import ULID, ULID_PATTERN, is_ulid

__all__ = ["RETURN_ID", "ULID_PATTERN", "is_ulid"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as its two Crockford digits: a ULID is 13 look-ups and one join.
_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
# 26 digits hold 130 bits; the first digit's top two bits are the zeros above 128.
_PAIR_SHIFTS = tuple(range(120, -1, -10))
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1
RETURN_ID = re.compile(rf"^R-(?P<store>[A-Za-z0-9_-]{{1,32}})-(?P<ulid>{ULID})$")


class _UlidSource:
    """ULIDs (48-bit millisecond time, 80 random bits, Crockford base32), monotonic within a
    millisecond as the ULID spec's monotonic mode: a refund's ids are made on the writer's hot
    path, so this is a few integer operations and table look-ups, not a library object."""

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
        return "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in _PAIR_SHIFTS])


_ulids = _UlidSource()


def new_ulid(at: datetime) -> str:
    return _ulids.new(at)


def new_return_id(store_id: str, at: datetime) -> str:
    """The unified Return ID: store-scoped, time-ordered, unique across the fleet."""
    return f"R-{store_id}-{new_ulid(at)}"


def is_return_id(code: str) -> bool:
    return RETURN_ID.match(code) is not None


def new_store_credit_code(prefix: str) -> str:
    """A printable code (60 random bits) with a check character against typos."""
    bits = int.from_bytes(secrets.token_bytes(8), "big") >> 4
    digits = [(bits >> (5 * i)) & 31 for i in range(12)]
    body = "".join([_CROCKFORD[d] for d in digits])
    check = _CROCKFORD[sum(d * (i + 1) for i, d in enumerate(digits)) % 32]
    return f"{prefix}-{body[0:4]}-{body[4:8]}-{body[8:12]}{check}"
