"""GS1 data in a scan: GTINs, element strings (batch, expiry, weights) and Digital Link URLs.

biip does the parsing; this module turns its result into a small JSON-ready dict with the
fields a register needs, plus every application identifier for anything else.
"""

from __future__ import annotations

from typing import Any

import biip
from biip.gs1_element_strings import GS1ElementString
from biip.gtin import Gtin

GS = "\x1d"
GTIN_LENGTHS = (8, 12, 13, 14)

# Friendly names for the AIs registers use most; every AI is also listed under "ai".
_FIELDS = {
    "01": "gtin",
    "02": "content_gtin",
    "10": "batch",
    "11": "production_date",
    "13": "packaging_date",
    "15": "best_before",
    "17": "expiry",
    "21": "serial",
    "37": "count",
}
_WEIGHT_AIS = {"310": "net_weight_kg", "320": "net_weight_lb", "330": "gross_weight_kg"}
_PRICE_AIS = {"392": "price", "393": "price"}


def _element_value(element: GS1ElementString) -> Any:
    if element.date is not None:
        return element.date.isoformat()
    if element.decimal is not None:
        return str(element.decimal)
    if element.money is not None:
        return str(element.money.amount)
    return element.value


def _element_fields(elements: list[GS1ElementString]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    listed: list[dict[str, Any]] = []
    for element in elements:
        ai = element.ai.ai
        value = _element_value(element)
        listed.append({"ai": ai, "title": element.ai.data_title, "value": value})
        name = _FIELDS.get(ai) or _WEIGHT_AIS.get(ai[:3]) or _PRICE_AIS.get(ai[:3])
        if name is not None and name not in out:
            out[name] = value
    out["ai"] = listed
    return out


def parse_gtin(value: str) -> Gtin | None:
    """`value` as a GTIN if it is one, its check digit verified by biip; else None.

    Only 8, 12, 13 or 14 ASCII digits qualify: biip alone would also take surrounding
    spaces and other scripts' digits, which a register's product code never holds.
    """
    if not (value.isascii() and value.isdigit() and len(value) in GTIN_LENGTHS):
        return None
    try:
        return Gtin.parse(value)
    except biip.ParseError:
        return None


def _parse(value: str) -> biip.ParseResult | None:
    try:
        return biip.parse(value)
    except biip.ParseError:
        return None


def parse_gs1(data: str, *, gs1_symbology: bool, gtin_only: bool = False) -> dict[str, Any] | None:
    """GS1 meaning of `data`, or None when it is not GS1 data.

    With a GS1 symbology (from the AIM prefix) the data is an element string. Without one,
    a GS separator or a leading `01` + 14 digits marks an element string, a bare 8/12/13/14
    digit code with a valid check digit is a GTIN, and an http(s) URL may be a Digital Link.
    """
    if data.lower().startswith(("http://", "https://")):
        result = _parse(data)
        if result is None or result.gs1_digital_link_uri is None:
            return None
        link = result.gs1_digital_link_uri
        return {"kind": "gs1_digital_link", **_element_fields(list(link.element_strings))}
    looks_like_message = not gtin_only and (
        gs1_symbology or GS in data or (data[:2] == "01" and len(data) > 16)
    )
    if looks_like_message:
        result = _parse(data.lstrip(GS))
        if result is not None and result.gs1_message is not None:
            return {"kind": "gs1", **_element_fields(list(result.gs1_message.element_strings))}
        if gs1_symbology:
            return None
    gtin = parse_gtin(data)
    if gtin is not None:
        return {"kind": "gtin", "gtin": gtin.as_gtin_14()}
    return None
