"""Identifiers that travel with a refund: Return IDs, event ids and store credit codes."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from ulid import ULID

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RETURN_ID = re.compile(r"^R-(?P<store>[A-Za-z0-9_-]{1,32})-(?P<ulid>[0-9A-HJKMNP-TV-Z]{26})$")


def new_ulid(at: datetime) -> str:
    return str(ULID.from_datetime(at))


def new_return_id(store_id: str, at: datetime) -> str:
    """The unified Return ID: store-scoped, time-ordered, unique across the fleet."""
    return f"R-{store_id}-{new_ulid(at)}"


def is_return_id(code: str) -> bool:
    return RETURN_ID.match(code) is not None


def new_store_credit_code(prefix: str) -> str:
    """A printable code (60 random bits) with a check character against typos."""
    bits = int.from_bytes(secrets.token_bytes(8), "big") >> 4
    body = "".join(_CROCKFORD[(bits >> (5 * i)) & 31] for i in range(12))
    check = _CROCKFORD[sum(_CROCKFORD.index(c) * (i + 1) for i, c in enumerate(body)) % 32]
    return f"{prefix}-{body[0:4]}-{body[4:8]}-{body[8:12]}{check}"
