"""Discovery over real multicast: the gateway daemon advertises `_edge-gateway._tcp`, and
`edge-gateway discover` (and a zeroconf browser, as a register would run one) finds it.

Multicast must never leave this machine, so each scenario runs in a network namespace of its
own (`unshare --net`: only a loopback interface, made multicast-capable), with this module as
the program run inside it; it writes what it saw to `result.json` and the test asserts on it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.core.daemon import CLI, ROOT, cli, env_for, free_port, launch

STORE, GATEWAY = "0042", "gw-03"
INSTANCE = f"{STORE}-{GATEWAY}._edge-gateway._tcp.local."


def run_in_namespace(folder: Path, scenario: str) -> dict[str, Any]:
    out = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-m", __name__, scenario, str(folder)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return dict(json.loads((folder / "result.json").read_text()))


def test_a_register_finds_the_gateway_and_sees_it_leave(tmp_path: Path) -> None:
    seen = run_in_namespace(tmp_path, "advertise")
    assert seen["discover_rc"] == 0
    [record] = seen["records"]
    assert {k: record[k] for k in ("store_id", "gateway_id", "port", "scheme")} == {
        "store_id": STORE,
        "gateway_id": GATEWAY,
        "port": seen["port"],
        "scheme": "https",
    }
    assert record["tls_sha256"] == seen["served_sha256"], "the record pins the served cert"
    assert record["tls_sha256"] == seen["file_sha256"]
    assert (record["path"], record["api"], record["version"]) == ("/", "/v1", seen["version"])
    assert record["addresses"] == ["127.0.0.1"]
    assert record["url"] == f"https://127.0.0.1:{seen['port']}/"
    table = seen["table"].splitlines()
    assert table[0].split() == ["STORE", "GATEWAY", "ADDRESS", "PORT", "SCHEME", "SHA-256"]
    assert table[1].split() == [STORE, GATEWAY, "127.0.0.1", str(seen["port"]), "https",
                                seen["served_sha256"]]  # fmt: skip
    # the goodbye packets: a register's browser drops the gateway at once, not after the TTL
    assert seen["daemon_rc"] == 0
    assert seen["removed_after_s"] is not None, "no goodbye reached the browser"
    assert seen["removed_after_s"] < 5
    assert seen["after_stop"] == {"rc": 1, "records": []}
    assert "zeroconf: advertising" in seen["log"]
    assert "Traceback" not in seen["log"]


def test_no_multicast_interface_is_logged_once_and_the_api_serves_on(tmp_path: Path) -> None:
    seen = run_in_namespace(tmp_path, "no-multicast")
    assert seen["daemon_rc"] == 0
    assert seen["readyz"] == 200
    assert "edge_discovery_errors_total 1.0" in seen["metrics"]
    assert seen["log"].count("zeroconf: could not advertise") == 1
    assert "Traceback" not in seen["log"]


# ---- what runs inside the namespace --------------------------------------------------------


def _gateway_env(folder: Path, port: int) -> dict[str, str]:
    # bound to every interface of the namespace, as on a store LAN: HTTPS and the record
    # are on by default there
    return env_for(
        folder / "data",
        port,
        EDGE_LAN__BIND="0.0.0.0",  # the namespace has nothing but loopback
        EDGE_STORE_ID=STORE,
        EDGE_GATEWAY_ID=GATEWAY,
    )


def _discover(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "discover", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _served_fingerprint(port: int) -> str:
    from edge.api.tls import fingerprint_of  # noqa: PLC0415

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        return fingerprint_of(tls.getpeercert(binary_form=True) or b"")


async def _stop_and_watch_goodbye(proc: subprocess.Popen[bytes]) -> float | None:
    """Browse as a register would; once the gateway is listed, stop it and time how long
    until the browser drops it. None if it is still listed after 10 s."""
    from zeroconf import ServiceStateChange, Zeroconf  # noqa: PLC0415
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf  # noqa: PLC0415

    added, removed = asyncio.Event(), asyncio.Event()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if name == INSTANCE:
            (removed if state_change is ServiceStateChange.Removed else added).set()

    async with AsyncZeroconf() as aiozc:
        browser = AsyncServiceBrowser(
            aiozc.zeroconf, "_edge-gateway._tcp.local.", handlers=[on_change]
        )
        try:
            async with asyncio.timeout(10):
                await added.wait()
            stopped = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await removed.wait()
            except TimeoutError:
                return None
            return time.monotonic() - stopped
        finally:
            await browser.async_cancel()


async def _fetch(port: int, fingerprint: str, path: str) -> tuple[int, str]:
    pin = aiohttp.Fingerprint(bytes.fromhex(fingerprint.replace(":", "")))
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"https://127.0.0.1:{port}{path}", ssl=pin) as reply,
    ):
        return reply.status, await reply.text()


def _advertise(folder: Path) -> dict[str, Any]:
    from edge import __version__  # noqa: PLC0415
    from edge.api.tls import certificate_fingerprint  # noqa: PLC0415

    subprocess.run(["ip", "link", "set", "lo", "up", "multicast", "on"], check=True)
    port = free_port()
    env = _gateway_env(folder, port)
    log = folder / "daemon.log"
    proc = launch(env, folder, log)
    try:
        as_json = _discover(env, "--json", "--timeout", "2")
        as_table = _discover(env, "--timeout", "2")
        records = json.loads(as_json.communicate(timeout=30)[0])
        table = as_table.communicate(timeout=30)[0]
        served = _served_fingerprint(port)
        removed_after = asyncio.run(_stop_and_watch_goodbye(proc))
        daemon_rc = proc.wait(30)
        after = cli(env, "discover", "--json", "--timeout", "1")
        after_records = json.loads(after.stdout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {
        "port": port,
        "version": __version__,
        "discover_rc": as_json.returncode,
        "records": records,
        "table": table,
        "served_sha256": served,
        "file_sha256": certificate_fingerprint(folder / "data" / "tls" / "lan-cert.pem"),
        "removed_after_s": removed_after,
        "daemon_rc": daemon_rc,
        "after_stop": {"rc": after.returncode, "records": after_records},
        "log": log.read_text(),
    }


def _no_multicast(folder: Path) -> dict[str, Any]:
    from edge.api.tls import certificate_fingerprint  # noqa: PLC0415

    # loopback down: no interface has an address, so zeroconf has nothing to listen on
    port = free_port()
    env = _gateway_env(folder, port)
    log = folder / "daemon.log"
    proc = launch(env, folder, log)
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)  # so the test can ask
        fingerprint = certificate_fingerprint(folder / "data" / "tls" / "lan-cert.pem")
        readyz, _ = asyncio.run(_fetch(port, fingerprint, "/readyz"))
        _, metrics = asyncio.run(_fetch(port, fingerprint, "/metrics"))
        proc.send_signal(signal.SIGTERM)
        daemon_rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"readyz": readyz, "metrics": metrics, "daemon_rc": daemon_rc, "log": log.read_text()}


def _inside(scenario: str, folder: Path) -> None:
    result = {"advertise": _advertise, "no-multicast": _no_multicast}[scenario](folder)
    (folder / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    _inside(sys.argv[1], Path(sys.argv[2]))
