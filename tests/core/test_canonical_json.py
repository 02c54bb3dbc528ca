"""Canonical JSON is exactly the text `json.dumps` writes, whichever library writes it: the
fingerprints, audit hashes and envelopes stored before are matched by those made now."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge.canonical import canonical_json

text = st.text(max_size=12) | st.sampled_from(["Größe", "\x7f", "\x00\x1f", "\u2028", "😀"])
leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | text
    | st.decimals(allow_nan=False, places=2, max_value=10**6, min_value=-(10**6))
    | st.just(datetime(2026, 11, 22, 10, 15, tzinfo=UTC))
)
json_data = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=25,
)


def reference(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


@given(json_data)
@settings(max_examples=1500, deadline=None)
@example({"b": [1, "x"], "a": None, "é": "\x7f"})
@example(2**64)
@example({"amount": Decimal("19.99")})
def test_the_text_is_what_json_writes(value: Any) -> None:
    assert canonical_json(value) == reference(value)
