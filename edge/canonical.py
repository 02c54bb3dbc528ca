"""Canonical JSON text: compact, keys sorted, non-ASCII escaped, as `json.dumps` writes it.

Stored values depend on these exact characters: request fingerprints (a sale recorded
again, an idempotent retry), the audit chain's hashes and the outbox envelopes HQ
receives. orjson writes the same text for any JSON data whose text is printable ASCII (it
escapes quotes, backslashes and control characters as `json` does) and is several times
faster, which counts on the refund path; where the text is not printable ASCII (`json`
escapes non-ASCII and DEL characters), or the data is not plain JSON data (integers past
64 bits, dates, `Decimal`s, which `json` writes with `str`), the text comes from `json`
itself. Floats are not written here: money is decimal text, and no hashed value holds one
(their exponent form differs between the two libraries).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str).encode


def canonical_json(value: Any) -> str:
    """`json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)`, faster."""
    try:
        text = orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return _dumps(value)
    if text.isascii() and b"\x7f" not in text:
        return text.decode("ascii")
    return _dumps(value)
