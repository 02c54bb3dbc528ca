"""NDEF records as registers receive them, and Type 2 tag memory walked page by page."""

from __future__ import annotations

import ndef
import pytest

from edge.devices.ndef_records import (
    ReadBlock,
    decode_message,
    record_fields,
    type2_ndef_message,
)

from .vpcd_card import type2_memory

UID = bytes.fromhex("04112233445566")


def reader_of(memory: bytes, *, fail_from: int | None = None) -> tuple[list[int], ReadBlock]:
    """A `read_block` over `memory` that records the pages asked for."""
    asked: list[int] = []

    def read_block(page: int) -> bytes | None:
        asked.append(page)
        if fail_from is not None and page >= fail_from:
            return None
        block = memory[page * 4 : page * 4 + 16]
        return block + bytes(16 - len(block))

    return asked, read_block


def test_records_are_given_as_uri_text_or_hex() -> None:
    other = ndef.Record("application/json", "", b'{"a": 1}')
    assert [record_fields(r) for r in [ndef.UriRecord("https://x.example/é"), other]] == [
        {"type": "uri", "uri": "https://x.example/é"},
        {"type": "application/json", "data": b'{"a": 1}'.hex().upper()},
    ]
    message = b"".join(ndef.message_encoder([ndef.TextRecord("Grüße", "de")]))
    assert decode_message(message) == [{"type": "text", "text": "Grüße"}]
    with pytest.raises(ndef.DecodeError):
        decode_message(message[:-3])


def test_the_ndef_tlv_is_found_after_other_tlvs_and_read_only_as_far_as_needed() -> None:
    records = [ndef.UriRecord("https://example.com/r/1")]
    memory = type2_memory(UID, records)
    asked, read_block = reader_of(memory)
    message = type2_ndef_message(read_block)
    assert message == b"".join(ndef.message_encoder(records))
    assert asked == [3, 7], "the capability container, then the rest of a short message"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({12: 0x00}, "not formatted for NDEF"),
        ({15: 0x80}, "NDEF data not readable"),
        ({16: 0xFE}, "a terminator before any NDEF TLV"),
    ],
)
def test_a_tag_without_readable_ndef_gives_none(change: dict[int, int], why: str) -> None:
    memory = bytearray(type2_memory(UID, [ndef.TextRecord("hello")]))
    for offset, value in change.items():
        memory[offset] = value
    _, read_block = reader_of(bytes(memory))
    assert type2_ndef_message(read_block) is None, why


def test_null_tlvs_are_skipped() -> None:
    memory = bytearray(type2_memory(UID, []))
    message = b"".join(ndef.message_encoder([ndef.TextRecord("hi")]))
    memory[16:] = b"\x00\x00\x03" + bytes([len(message)]) + message + b"\xfe"
    memory += bytes(144 + 16 - len(memory))
    _, read_block = reader_of(bytes(memory))
    assert type2_ndef_message(read_block) == message


def test_a_read_failure_or_a_message_past_the_data_area_gives_none() -> None:
    long = [ndef.UriRecord("https://example.com/" + "r" * 100)]
    _, failing = reader_of(type2_memory(UID, long), fail_from=7)
    assert type2_ndef_message(failing) is None
    memory = bytearray(type2_memory(UID, long))
    memory[14] = 8  # the capability container says the data area is 64 bytes
    _, short = reader_of(bytes(memory))
    assert type2_ndef_message(short) is None
