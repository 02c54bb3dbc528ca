"""An NFC Forum Type 3 tag emulated with nfcpy's UDP driver, for reader tests without a radio.

nfcpy's `udp` driver carries the real NFC-F frames (polling, check) over loopback UDP; the
tag side is nfcpy's own Type3TagEmulation serving an NDEF attribute block and message.
"Presenting" the tag starts the emulator thread; "removing" it stops the thread.

The emulator listens in one long window: nfcpy forgets a polling exchange when a listen
window ends, so short windows would drop a reader's command that straddles the boundary.
nfcpy's UDP listener has no stop call, so `remove` wakes it with a datagram its parser
rejects (odd-length hex), which ends the emulator's connect.
"""

from __future__ import annotations

import binascii
import socket
import struct
import threading
from typing import Any

import ndef
import nfc


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def type3_memory(records: list[Any]) -> bytearray:
    """Attribute block + NDEF message, as a Type 3 tag stores them (16-byte blocks)."""
    message = b"".join(ndef.message_encoder(records)) if records else b""
    area = bytearray(message) + bytearray(-len(message) % 16)
    attr = bytearray(16)
    attr[0], attr[1], attr[2] = 0x10, 1, 1  # version 1.0, one block per read and write
    struct.pack_into(">H", attr, 3, max(1, len(area) // 16))
    attr[11:14] = struct.pack(">I", len(message))[1:]
    struct.pack_into(">H", attr, 14, sum(attr[:14]))
    return attr + area


class EmulatedType3Tag:
    """One tag (IDm = UID) that can be presented to and removed from the UDP radio."""

    def __init__(self, port: int, idm_hex: str, records: list[Any]) -> None:
        self.port = port
        self.idm = bytes.fromhex(idm_hex)
        self.memory = type3_memory(records)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.activated = threading.Event()

    def present(self) -> None:
        self._stop.clear()
        self.activated.clear()
        self._thread = threading.Thread(target=self._run, name="nfc-tag-emulator")
        self._thread.start()

    def remove(self) -> None:
        self._stop.set()
        if self._thread is not None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"212F 0", ("127.0.0.1", self.port))
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        clf = nfc.ContactlessFrontend(f"udp:127.0.0.1:{self.port}")
        try:
            while not self._stop.is_set():
                clf.connect(
                    card={"on-startup": self._startup, "on-connect": self._serve, "timeout": 60.0},
                    terminate=self._stop.is_set,
                )
        except binascii.Error:
            pass  # woken by remove()
        finally:
            clf.close()

    def _startup(self, target: Any) -> Any:
        target.brty = "212F"
        pmm = bytes.fromhex("01E0FFFFFFFFFFFF")  # generous response times: Python answers
        target.sensf_res = b"\x01" + self.idm + pmm + b"\x12\xfc"
        return target

    def _serve(self, tag: Any) -> bool:
        memory = self.memory

        def read(block: int, _rb: int, _re: int) -> bytes | None:
            if block < len(memory) // 16:
                return bytes(memory[block * 16 : (block + 1) * 16])
            return None

        tag.add_service(0x0009, read, lambda *_: False)
        tag.add_service(0x000B, read, lambda *_: False)
        self.activated.set()
        return True
