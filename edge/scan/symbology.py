"""AIM symbology identifiers (ISO/IEC 15424): the `]Cm` prefix a scanner may send first.

Scanners configured to transmit AIM IDs tell us the barcode type (Code 128, EAN-13,
GS1 DataMatrix...). We read the prefix with biip, name it in lower kebab case, and keep
the data without it so downstream parsing sees only the payload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from biip import ParseError
from biip.symbology import GS1Symbology, SymbologyIdentifier

_AIM_PREFIX = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Symbology:
    """The barcode type a payload came from, and whether it carries GS1 element strings."""

    name: str
    aim: str | None
    gs1: bool
    gtin_only: bool = False


def _kebab(enum_name: str) -> str:
    return enum_name.lower().replace("_", "-")


def split_aim(raw: str) -> tuple[Symbology, str]:
    """Separate a leading AIM identifier from the data; unknown prefixes are still removed."""
    match = _AIM_PREFIX.match(raw)
    if match is None:
        return Symbology(UNKNOWN, None, gs1=False), raw
    prefix = match.group(0)
    data = raw[len(prefix) :]
    try:
        ident = SymbologyIdentifier.extract(raw)
    except ParseError:
        return Symbology(f"aim-{prefix[1:]}", prefix, gs1=False), data
    gs1 = ident.gs1_symbology
    if gs1 is not None:
        gtin_only = gs1 in GS1Symbology.with_gtin()
        return Symbology(_kebab(gs1.name), prefix, gs1=not gtin_only, gtin_only=gtin_only), data
    return Symbology(_kebab(ident.iso_symbology.name), prefix, gs1=False), data
