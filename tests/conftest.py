"""Session-wide fixtures: the 3.1.1-only brokers that cluster, started once a session.

RabbitMQ takes seconds to start, so the contract suite and the broker interop tests share
one of each; tests on them use their own client ids and store ids (or run one after
another with clean sessions), so nothing one test leaves behind reaches another.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.logs import JsonFormatter, quiet_libraries
from tests.brokers import Nats, RabbitMq
from tests.log_scan import SecretScanner, known_secrets, log_files, source_files


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMq]:
    with RabbitMq(tmp_path_factory.mktemp("rabbitmq")) as broker:
        yield broker


@pytest.fixture(scope="session")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nats]:
    with Nats(tmp_path_factory.mktemp("nats")) as broker:
        yield broker


# ---- no secret in any log of the session (docs/logging.md) -------------------------------
# Every record of the test process goes, at DEBUG, through the product's JSON formatter
# without its redaction filter (so a leak in the code is found even where production would
# mask it) into a file under the session's basetemp; when the session ends, that file and
# every *.log under basetemp (the daemons' logs) are scanned, and a secret fails the run.

_SESSION_RECORDS = pytest.StashKey[Path]()
# test-only libraries whose DEBUG output is whole HTTP bodies (screenshots as base64)
_TEST_LIBRARY_FLOORS = {"selenium": logging.INFO, "urllib3": logging.INFO}


@pytest.fixture(scope="session", autouse=True)
def _every_record_to_a_file(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    path = tmp_path_factory.getbasetemp() / "session-records.jsonl"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    quiet_libraries(logging.DEBUG)
    for name, floor in _TEST_LIBRARY_FLOORS.items():
        logging.getLogger(name).setLevel(floor)
    request.config.stash[_SESSION_RECORDS] = path
    yield
    root.removeHandler(handler)
    handler.close()
    root.setLevel(level)


def pytest_sessionfinish(session: pytest.Session) -> None:
    records = session.config.stash.get(_SESSION_RECORDS, None)
    if records is None or not records.exists():
        return
    scanner = SecretScanner(known_secrets(source_files()))
    files = [records, *log_files(records.parent)]
    findings = [finding for path in files for finding in scanner.scan_file(path)]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("-", f"log secret check: {len(files)} logs, {len(findings)} secrets")
        for finding in findings[:50]:
            reporter.write_line(f"  SECRET IN A LOG: {finding}", red=True)
    if findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
