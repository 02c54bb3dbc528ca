"""`edge-gateway devices` and `devices watch`, run as the real command against socat ptys."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from edge.cli.main import main

from .conftest import WAIT_S, PtyPair


def config(tmp_path: Path, port: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[[devices.serial]]
id = "lane4-serial"
lane = "lane-4"
port = "{port}"
reconnect_s = 0.05

[[devices.serial]]
id = "lane5-serial"
lane = "lane-5"
port = "{tmp_path}/ttyACM9"

[[devices.keyboards]]
id = "lane1-scanner"
lane = "lane-1"
vendor_product = "0c2e:0b61"

[devices]
input_dir = "{tmp_path}/input"
"""
    )
    return path


def test_devices_lists_what_is_configured_and_present(
    pty_pair: PtyPair, tmp_path: Path, capsys: object
) -> None:
    cfg = config(tmp_path, pty_pair.port)
    assert main(["--config", str(cfg), "devices", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    by_device = {row["device"]: row for row in rows}
    assert by_device["lane4-serial"]["state"] == "present"
    assert by_device["lane5-serial"]["state"] == "missing"
    assert by_device["lane1-scanner"] == {
        "kind": "keyboard",
        "device": "lane1-scanner",
        "lane": "lane-1",
        "state": "not present",
    }
    assert main(["--config", str(cfg), "devices"]) == 0
    text = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "lane4-serial -> lane-4" in text
    assert "missing" in text


async def test_devices_watch_prints_decoded_scans(pty_pair: PtyPair, tmp_path: Path) -> None:
    cfg = config(tmp_path, pty_pair.port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge",
        "--config",
        str(cfg),
        "devices",
        "watch",
        "--count",
        "1",
        "--timeout",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(WAIT_S * 2):
            while b"connected    lane-4 lane4-serial" not in (line := await proc.stdout.readline()):
                assert line, "watch ended before the serial scanner connected"
            pty_pair.write(b"]C1010950600013435210ABC\x1d17261231\r")
            while " scan " not in (scan_line := (await proc.stdout.readline()).decode()):
                assert scan_line, "watch ended without printing the scan"
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert " scan lane-4 lane4-serial gs1-128 " in scan_line
    assert '"batch": "ABC"' in scan_line


def test_watch_with_nothing_to_read_ends_at_once(tmp_path: Path, capsys: object) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'[devices]\ninput_dir = "{tmp_path}/input"\n')
    assert main(["--config", str(cfg), "devices", "watch"]) == 1
    assert "no configured device" in capsys.readouterr().err  # type: ignore[attr-defined]
