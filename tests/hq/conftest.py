"""The same real mosquitto per test as the HQ link tests use, and the HQ store's databases:
a PostgreSQL cluster started once for the session (a fresh database per test) and SQLite
files in the test's temporary directory."""

from pathlib import Path

import pytest

from tests.hqlink.conftest import broker
from tests.pgserver import pg_server, pg_url

__all__ = ["broker", "db_url", "pg_server", "pg_url"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The HQ store's URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hq.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))
