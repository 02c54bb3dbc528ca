"""What a scanned or typed code refers to: a Return ID, or a sale (receipt or order).

Receipts carry the sale id in a Code 128 barcode, optionally as `RCPT:<sale id>`, or in
a QR code URL ending in the sale id or carrying `?sale=<id>`. An AIM symbology prefix
(`]C1`, `]Q1`...) left on by the scanner is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from edge.domain.ids import is_return_id

_AIM = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")


@dataclass(frozen=True)
class CodeRef:
    kind: Literal["return_id", "sale_id"]
    value: str


def classify_code(raw: str) -> CodeRef | None:
    """Normalise a scanned/typed code; None if it cannot name a sale or refund."""
    code = _AIM.sub("", raw.strip())
    if code.upper().startswith("RCPT:"):
        code = code[5:]
    if code.lower().startswith(("http://", "https://")):
        parts = urlsplit(code)
        query = parse_qs(parts.query)
        if "sale" in query:
            code = query["sale"][0]
        else:
            code = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    if not code or not _ID.match(code):
        return None
    if is_return_id(code):
        return CodeRef("return_id", code)
    return CodeRef("sale_id", code)
