"""Payload parsing: AIM identifiers, GS1 (biip), the project's own codes, and garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.scan.payload import MAX_SCAN_CHARS, parse_payload

GS = "\x1d"

GS1_FIXTURES = [
    # (raw, symbology, expected subset of parsed)
    (
        "]C1010950600013435210ABC123" + GS + "17261231",
        "gs1-128",
        {"kind": "gs1", "gtin": "09506000134352", "batch": "ABC123", "expiry": "2026-12-31"},
    ),
    (
        "]d20109506000134352310300125015261231" + GS + "21SN-77",
        "gs1-datamatrix",
        {"kind": "gs1", "net_weight_kg": "1.250", "best_before": "2026-12-31", "serial": "SN-77"},
    ),
    (
        "]Q301095060001343521725063010LOT" + GS + "3922299",
        "gs1-qr-code",
        {"kind": "gs1", "expiry": "2025-06-30", "batch": "LOT", "price": "2.99"},
    ),
    ("]e001095060001343523202001230", "gs1-databar", {"kind": "gs1", "net_weight_lb": "12.30"}),
    ("]E09506000134352", "ean-13", {"kind": "gtin", "gtin": "09506000134352"}),
    ("]E496385074", "ean-8", {"kind": "gtin", "gtin": "00000096385074"}),
    ("]I110012345678902", "itf-14", {"kind": "gtin", "gtin": "10012345678902"}),
    ("036000291452", "unknown", {"kind": "gtin", "gtin": "00036000291452"}),
    # a keyboard wedge without AIM: the FNC1/GS tells us it is GS1
    ("0109506000134352" + GS + "10BATCH9", "unknown", {"kind": "gs1", "batch": "BATCH9"}),
    (
        "https://id.gs1.org/01/09506000134352/10/ABC?17=261231",
        "unknown",
        {
            "kind": "gs1_digital_link",
            "gtin": "09506000134352",
            "batch": "ABC",
            "expiry": "2026-12-31",
        },
    ),
]


@pytest.mark.parametrize(("raw", "symbology", "expected"), GS1_FIXTURES)
def test_gs1_fixtures(raw: str, symbology: str, expected: dict[str, str]) -> None:
    scan = parse_payload(raw)
    assert scan.symbology == symbology
    assert {k: scan.parsed.get(k) for k in expected} == expected
    if "kind" in expected and expected["kind"] == "gs1":
        assert all({"ai", "title", "value"} <= set(item) for item in scan.parsed["ai"])


def test_aim_prefix_is_reported_and_removed_from_data() -> None:
    scan = parse_payload("]C0TSHIRT-M-BLK")
    assert (scan.symbology, scan.data, scan.parsed) == (
        "code-128",
        "TSHIRT-M-BLK",
        {"aim": "]C0", "kind": "text"},
    )


def test_unknown_aim_code_character_is_still_stripped() -> None:
    scan = parse_payload("]J1hello")
    assert (scan.symbology, scan.data) == ("aim-J1", "hello")


def test_bad_check_digit_is_not_a_gtin() -> None:
    assert parse_payload("4006381333932").parsed == {"kind": "text"}


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (
            "R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0",
            {"kind": "return_id", "return_id": "R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0"},
        ),
        (
            "]C0R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0",
            {"aim": "]C0", "kind": "return_id", "return_id": "R-0042-01JD3X5Q7W8ZK3M9T2B4C6D8F0"},
        ),
        ("RCPT:0042-03-20261122-0007", {"kind": "receipt", "sale_id": "0042-03-20261122-0007"}),
        (
            "https://shop.example/r/0042-03-20261122-0007",
            {"kind": "receipt", "sale_id": "0042-03-20261122-0007"},
        ),
        (
            "https://shop.example/receipt?sale=0042-03-20261122-0007",
            {"kind": "receipt", "sale_id": "0042-03-20261122-0007"},
        ),
        ("0042-03-20261122-0007", {"kind": "sale_id", "sale_id": "0042-03-20261122-0007"}),
        ("TSHIRT-M-BLK", {"kind": "text"}),
    ],
)
def test_project_codes(raw: str, parsed: dict[str, str]) -> None:
    assert parse_payload(raw).parsed == parsed


def test_control_characters_other_than_gs_are_removed_and_size_is_capped() -> None:
    assert parse_payload("\x00AB\x07C\x1bD").data == "ABCD"
    assert len(parse_payload("9" * (MAX_SCAN_CHARS * 3)).data) == MAX_SCAN_CHARS


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_input_parses_without_raising(raw: str) -> None:
    scan = parse_payload(raw)
    assert isinstance(scan.parsed["kind"], str)
    assert "\x00" not in scan.data


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["]C1", "]d2", "]Q3", "]e0", "]E0", "]I1", ""]),
    st.text(alphabet="0123456789\x1d", max_size=60),
)
def test_gs1_shaped_garbage_never_raises(prefix: str, body: str) -> None:
    assert parse_payload(prefix + body).parsed["kind"] in {"gs1", "gtin", "text", "sale_id"}
