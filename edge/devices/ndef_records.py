"""NDEF records as registers receive them, and the NDEF message of an NFC Forum Type 2 tag.

Both NFC paths hand the lane the same record shape (the contract's `parsed.ndef`): URI and
text records spelled out, any other type as upper-case hex, so a register needs no NDEF
decoder. nfcpy reads a tag's NDEF message itself; over PC/SC the gateway reads it from Type 2
tags (NTAG, MIFARE Ultralight: the stickers and cards customers carry) four pages at a time,
following the NFC Forum Type 2 Tag specification: the capability container on page 3, then
the TLV blocks of the data area from page 4.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ndef

ReadBlock = Callable[[int], bytes | None]  # 16 bytes from a page on, None if the read failed

_NDEF_MAGIC = 0xE1
_TLV_NULL, _TLV_NDEF, _TLV_TERMINATOR = 0x00, 0x03, 0xFE
_CC_PAGE, _DATA_PAGE = 3, 4


def record_fields(record: Any) -> dict[str, str]:
    """One decoded NDEF record as a `parsed.ndef` entry."""
    if isinstance(record, ndef.TextRecord):
        return {"type": "text", "text": record.text}
    if isinstance(record, ndef.UriRecord):
        return {"type": "uri", "uri": record.iri}
    return {"type": str(record.type), "data": bytes(record.data).hex().upper()}


def decode_message(message: bytes) -> list[dict[str, str]]:
    """The records of an NDEF message; raises `ndef.DecodeError` on a malformed one."""
    return [record_fields(record) for record in ndef.message_decoder(message)]


class _DataArea:
    """A Type 2 tag's data area, fetched four pages at a time as far as it is read."""

    def __init__(self, read_block: ReadBlock, first: bytes, size: int) -> None:
        self._read_block = read_block
        self._data = bytearray(first)
        self._size = size

    def holds(self, end: int) -> bool:
        """Whether bytes up to `end` exist and could be read."""
        if end > self._size:
            return False
        while len(self._data) < end:
            block = self._read_block(_DATA_PAGE + len(self._data) // 4)
            if block is None or len(block) != 16:
                return False
            self._data += block
        return True

    def __getitem__(self, index: slice) -> bytes:
        return bytes(self._data[index])


def type2_ndef_message(read_block: ReadBlock) -> bytes | None:
    """The NDEF message stored on a Type 2 tag; None when it holds none or cannot be read."""
    head = read_block(_CC_PAGE)  # the capability container, then pages 4 to 6
    if head is None or len(head) != 16 or head[0] != _NDEF_MAGIC or head[3] >> 4 != 0:
        return None  # not formatted for NDEF, or its NDEF data may not be read
    area = _DataArea(read_block, head[4:], size=head[2] * 8)
    pos = 0
    while area.holds(pos + 1):
        (tag,) = area[pos : pos + 1]
        if tag == _TLV_TERMINATOR:
            return None
        if tag == _TLV_NULL:
            pos += 1
            continue
        if not area.holds(pos + 2):
            return None
        (length,) = area[pos + 1 : pos + 2]
        pos += 2
        if length == 0xFF:  # three-byte length format
            if not area.holds(pos + 2):
                return None
            length = int.from_bytes(area[pos : pos + 2], "big")
            pos += 2
        if tag == _TLV_NDEF:
            return area[pos : pos + length] if area.holds(pos + length) else None
        pos += length
    return None
