"""A real mosquitto for tests: started on a free loopback port, stoppable and restartable.

Readiness is the broker's own "running" log line (read by a drain thread that also keeps
the pipe from filling), so no test waits on a fixed delay.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
from pathlib import Path

STARTUP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mosquitto:
    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
            "log_type information\n"
            "max_inflight_messages 0\nmax_queued_messages 0\nset_tcp_nodelay true\n"
            # as root mosquitto would switch to its own user, who cannot read test files
            f"user {getpass.getuser()}\n" + self.extra_conf
        )
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        ready = threading.Event()
        threading.Thread(target=self._drain, args=(self.proc, ready), daemon=True).start()
        if not ready.wait(STARTUP_TIMEOUT_S) or not self.running:
            self.stop()
            raise RuntimeError(f"mosquitto did not start; see {self.log_path}")
        self.starts += 1

    def _drain(self, proc: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert proc.stdout is not None
        with self.log_path.open("ab") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if b" running" in line:
                    ready.set()
        ready.set()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()
