"""From the characters a device delivered to a scan's `symbology`, `data` and `parsed`.

Order matters: a GS1 symbology or GS1-shaped data is read as GS1 first (a GTIN is also a
valid sale-id-shaped string); then the project's own codes (Return IDs, receipt codes,
sale ids) through the refund domain's classifier, so a scan and a typed lookup agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from edge.domain.codes import classify_code
from edge.scan.gs1 import GS, parse_gs1
from edge.scan.symbology import UNKNOWN, split_aim

# Control characters a scanner may leave in the data besides GS (FNC1 in GS1 data).
_STRAY_CONTROL = re.compile(r"[\x00-\x1c\x1e\x1f\x7f]")
MAX_SCAN_CHARS = 4096
# The house sale id: store-register-date-sequence, e.g. 0042-03-20261122-0007.
_SALE_ID = re.compile(r"^[A-Za-z0-9]{1,8}-[A-Za-z0-9]{1,8}-\d{8}-\d{1,8}$")


@dataclass(frozen=True)
class ParsedScan:
    """A scan ready for the lane: the payload without AIM prefix, and what it means."""

    symbology: str
    data: str
    parsed: dict[str, Any] = field(default_factory=dict)


def _receipt_fields(data: str) -> dict[str, Any] | None:
    """A Return ID, a receipt code (RCPT: prefix or URL), or a bare sale id in house format."""
    ref = classify_code(data)
    if ref is None:
        return None
    if ref.kind == "return_id":
        return {"kind": "return_id", "return_id": ref.value}
    if ref.value != data:
        return {"kind": "receipt", "sale_id": ref.value}
    if _SALE_ID.match(ref.value):
        return {"kind": "sale_id", "sale_id": ref.value}
    return None


def parse_payload(raw: str, *, symbology_hint: str | None = None) -> ParsedScan:
    """Parse one complete scan; never raises, however garbled the input."""
    text = raw[:MAX_SCAN_CHARS]
    symbology, data = split_aim(text)
    data = _STRAY_CONTROL.sub("", data).strip(" ")
    name = symbology.name
    if name == UNKNOWN and symbology_hint is not None:
        name = symbology_hint
    parsed: dict[str, Any] = {}
    if symbology.aim is not None:
        parsed["aim"] = symbology.aim
    meaning = parse_gs1(data, gs1_symbology=symbology.gs1, gtin_only=symbology.gtin_only)
    if meaning is None and GS not in data:
        meaning = _receipt_fields(data)
    parsed.update(meaning or {"kind": "text"})
    return ParsedScan(symbology=name, data=data, parsed=parsed)
