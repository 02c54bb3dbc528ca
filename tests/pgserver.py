"""A real PostgreSQL for tests: a throwaway cluster started by the test run itself.

Debian's server binaries (`/usr/lib/postgresql/<version>/bin`) make a cluster in a fresh
temporary directory, listening on a free loopback port and on a socket in that directory,
with trust authentication for loopback connections only. The machine's own cluster (if
any) is never touched. As root, the cluster runs as the `postgres` system user, since
`initdb` refuses root. `pg_ctl start -w` returns once the server accepts connections, so
nothing waits on a fixed delay. Each test gets a fresh database.

Fixtures for any test package: `from tests.pgserver import pg_server, pg_url` in its
conftest.py (`pg_server` is session-scoped; `pg_url` is a fresh database's URL).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.hqlink.broker import free_port

PG_USER = "postgres"
START_TIMEOUT_S = 60


def server_bin() -> Path:
    """The newest installed server's binaries (`postgresql` package)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    if not found:
        raise RuntimeError("no PostgreSQL server found: install Debian's postgresql package")
    return found[-1].parent


class PostgresServer:
    """One cluster; `create_database()` hands out a fresh, empty database per call."""

    def __init__(self) -> None:
        self.bin = server_bin()
        self.port = free_port()
        self.workdir: Path | None = None
        self._names = itertools.count(1)
        self._as_postgres = os.geteuid() == 0

    @property
    def data(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "data"

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", PG_USER, "--"] if self._as_postgres else []
        subprocess.run(
            [*prefix, *cmd],
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=START_TIMEOUT_S,
        )

    def start(self) -> None:
        # not under pytest's tmp_path: as root that lies in a 0700 directory of root's,
        # which the postgres user could not enter
        self.workdir = Path(tempfile.mkdtemp(prefix="edge-pg-"))
        if self._as_postgres:
            user = pwd.getpwnam(PG_USER)
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
        self._run(
            str(self.bin / "initdb"),
            "-D", str(self.data),
            "-U", PG_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )  # fmt: skip
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1"
            f" -c unix_socket_directories={self.workdir}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=300"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D", str(self.data),
            "-l", str(self.workdir / "postgres.log"),
            "-o", options,
            "-w", "-t", str(START_TIMEOUT_S),
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (fast: open sessions are ended) and remove the cluster."""
        if self.workdir is None:
            return
        try:
            if (self.data / "postmaster.pid").exists():
                pg_ctl = str(self.bin / "pg_ctl")
                self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres", autocommit=True
        )

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the session's PostgreSQL."""
    return pg_server.create_database()
