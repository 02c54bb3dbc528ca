"""A contactless card for pcscd's vpcd virtual reader: it answers like an ACR122U would.

vpcd (the PC/SC driver from vsmartcard) listens on a TCP port; a virtual card "inserts"
itself by connecting. Messages are a 2-byte big-endian length and a payload: a 1-byte
control code (power off/on, reset, get ATR) or a command APDU to answer.

A card given `memory` is an NFC Forum Type 2 tag (NTAG, MIFARE Ultralight): its ATR says so
and it answers "read binary" (`FF B0 00 <page> 10`) with four pages, rolling over at the end
as those tags do. Any other card is a MIFARE Classic that answers nothing but its UID.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import ndef

_GET_ATR, _CONTROL = 4, {0, 1, 2}
# A PC/SC part 3 contactless ATR (ISO 14443-A, MIFARE Classic 1K), as ACR122U readers report
ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
ATR_ULTRALIGHT = bytes.fromhex("3B8F8001804F0CA0000003060300030000000068")  # NTAG reads like it


def type2_memory(uid: bytes, records: list[Any], *, data_bytes: int = 144) -> bytes:
    """The pages of an NTAG213-like tag holding `records`: UID and lock pages, the capability
    container, a lock control TLV (which readers skip), the NDEF TLV and a terminator."""
    message = b"".join(ndef.message_encoder(records))
    size = len(message)
    length = bytes([size]) if size < 0xFF else b"\xff" + size.to_bytes(2, "big")
    data = b"\x01\x03\xa0\x0c\x34" + b"\x03" + length + message + b"\xfe"
    assert len(data) <= data_bytes, "the records do not fit the tag"
    head = uid[:3] + b"\x00" + uid[3:7] + b"\x00\x00\x00\x00"  # serial and lock pages
    capability = bytes([0xE1, 0x10, data_bytes // 8, 0x00])
    return head + capability + data + bytes(data_bytes - len(data))


class VirtualCard:
    def __init__(
        self, port: int, uid_hex: str, *, answer_uid: bool = True, memory: bytes | None = None
    ) -> None:
        self.port = port
        self.uid = bytes.fromhex(uid_hex)
        self.answer_uid = answer_uid
        self.memory = memory
        self.apdus: list[bytes] = []
        self.answered = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def insert(self) -> None:
        self._sock = socket.create_connection(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._serve, args=(self._sock,), name="vpcd-card")
        self._thread.start()

    def remove(self) -> None:
        if self._sock is not None:
            self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = sock.recv(2, socket.MSG_WAITALL)
                if len(header) < 2:
                    return
                (size,) = struct.unpack(">H", header)
                message = sock.recv(size, socket.MSG_WAITALL) if size else b""
                if len(message) == 1 and message[0] == _GET_ATR:
                    self._send(sock, ATR if self.memory is None else ATR_ULTRALIGHT)
                elif len(message) == 1 and message[0] in _CONTROL:
                    continue
                else:
                    self.apdus.append(message)
                    self._send(sock, self._answer(message))
                    self.answered.set()
        except OSError:
            return

    def _answer(self, apdu: bytes) -> bytes:
        if apdu[:2] == b"\xff\xca" and self.answer_uid:
            return self.uid + b"\x90\x00"
        if apdu[:3] == b"\xff\xb0\x00" and len(apdu) == 5 and self.memory is not None:
            memory, start = self.memory, apdu[3] * 4
            return bytes(memory[(start + i) % len(memory)] for i in range(apdu[4])) + b"\x90\x00"
        return b"\x6a\x81"  # function not supported

    @staticmethod
    def _send(sock: socket.socket, payload: bytes) -> None:
        sock.sendall(struct.pack(">H", len(payload)) + payload)
