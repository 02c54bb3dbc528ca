"""The HQ service under systemd's notify protocol: READY=1 once its store is open and its
loops run, STATUS= saying whether the broker is connected, WATCHDOG=1 pings while its event
loop turns, STOPPING=1 on SIGTERM (systemd/edge-gateway-hq.service is Type=notify with a
watchdog)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.core.daemon import ReadySocket
from tests.hqlink.broker import Mosquitto
from tests.hqlink.harness import HqService, spawn


def test_hq_reports_ready_status_and_feeds_the_watchdog(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    notify = ReadySocket(tmp_path)
    hq = HqService(tmp_path, broker.port)
    env = {**hq.env, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"}
    proc = spawn(hq.cmd, env, hq.log)
    try:
        ready = notify.wait_for("READY=1")
        assert "STATUS=instance hq-1; broker " in ready
        assert "WATCHDOG=1" in ready  # no WATCHDOG_PID: the watchdog is meant for it
        connected = notify.wait_for("broker connected")
        assert "WATCHDOG=1" in connected
        assert "WATCHDOG=1" in notify.wait_for("WATCHDOG=1", timeout=5)
        proc.terminate()
        assert "STOPPING=1" in notify.wait_for("STOPPING=1")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        broker.stop()
    assert os.path.getsize(hq.log) > 0
