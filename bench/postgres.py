"""A throwaway PostgreSQL cluster for the HQ benchmarks: Debian's server binaries, a data
directory in the run's folder, a free loopback port, and fsync on (as in production).

As root the cluster runs as the `postgres` user (initdb refuses root); the folder is handed
to that user first.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .support import free_port

PG_ROOT = Path("/usr/lib/postgresql")


def _bin_dir() -> Path:
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        msg = "PostgreSQL server binaries are missing: run scripts/setup (package postgresql)"
        raise RuntimeError(msg)
    return versions[-1]


class Postgres:
    """Start with `start()`, make databases with `create_database()`, stop with `stop()`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "pgdata"
        self.sockets = workdir / "pgsock"
        self.port = free_port()
        self._bin = _bin_dir()
        self._as_postgres = os.geteuid() == 0

    def _run(self, argv: Sequence[str], timeout: float = 120.0) -> None:
        cmd = list(argv)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            msg = f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
            raise RuntimeError(msg)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            for path in (self.workdir, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
            os.chmod(self.workdir, 0o700)
            for parent in self.workdir.parents:  # e.g. a 0700 temporary folder of root's
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        initdb = [str(self._bin / "initdb"), "-D", str(self.data), "-U", "postgres"]
        self._run([*initdb, "--auth=trust", "--no-instructions", "-E", "UTF8"])
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1"
            " -c max_connections=300 -c shared_buffers=128MB"
        )
        pg_ctl = [str(self._bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60"]
        self._run([*pg_ctl, "-l", str(self.workdir / "postgres.log"), "-o", options, "start"])

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        psql = self._bin / "psql"
        if not psql.exists():
            psql = Path(shutil.which("psql") or "psql")
        connect = [str(psql), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        self._run(
            [*connect, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"']
        )
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            self._run([str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"])
