"""The single writer: jobs queued during a commit share the next one, a failing job rolls
back alone, and closing commits what is queued."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from edge.errors import StorageError
from edge.ledger.writer import LedgerWriter


def insert(value: str):
    def job(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO counters (name, value) VALUES (?, 0)", (value,))
        return int(conn.total_changes)

    return job


def names(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT name FROM counters")}
    finally:
        db.close()


async def test_jobs_queued_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    async with LedgerWriter(path) as writer:
        started, release = threading.Event(), threading.Event()

        def hold(conn: sqlite3.Connection) -> None:
            started.set()
            release.wait(10)

        holding = asyncio.create_task(writer.write(hold))
        await asyncio.to_thread(started.wait, 10)
        commits = writer.commits
        queued = [asyncio.create_task(writer.write(insert(f"k{i}"))) for i in range(20)]
        await asyncio.sleep(0)  # every job is queued behind the held commit
        release.set()
        await holding
        await asyncio.gather(*queued)
        assert writer.commits == commits + 2, "the held job's commit, then one for all 20"
    assert {f"k{i}" for i in range(20)} <= names(path)


async def test_writers_wait_for_room_when_the_queue_is_full(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    async with LedgerWriter(path, queue_size=2) as writer:
        started, release = threading.Event(), threading.Event()

        def hold(conn: sqlite3.Connection) -> None:
            started.set()
            release.wait(10)

        holding = asyncio.create_task(writer.write(hold))
        await asyncio.to_thread(started.wait, 10)
        queued = [asyncio.create_task(writer.write(insert(f"w{i}"))) for i in range(5)]
        await asyncio.sleep(0)
        assert writer.jobs == 0
        release.set()
        await holding
        await asyncio.gather(*queued)
        assert writer.jobs == 6
    assert {f"w{i}" for i in range(5)} <= names(path)


async def test_a_failing_job_rolls_back_alone(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    async with LedgerWriter(path) as writer:

        def half_then_fail(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO counters (name, value) VALUES ('half', 0)")
            conn.execute("INSERT INTO counters (name, value) VALUES ('half', 0)")  # duplicate

        results = await asyncio.gather(
            writer.write(insert("before")),
            writer.write(half_then_fail),
            writer.write(insert("after")),
            return_exceptions=True,
        )
        assert isinstance(results[1], StorageError)
        assert not isinstance(results[0], BaseException)
        assert not isinstance(results[2], BaseException)
    assert {"before", "after"} <= names(path)
    assert "half" not in names(path)


async def test_closing_commits_what_is_queued_then_refuses(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    writer = await LedgerWriter(path).__aenter__()
    queued = [asyncio.create_task(writer.write(insert(f"q{i}"))) for i in range(5)]
    await asyncio.sleep(0)
    await writer.close()
    await asyncio.gather(*queued)
    assert {f"q{i}" for i in range(5)} <= names(path)
    with pytest.raises(StorageError):
        await writer.write(insert("late"))
    await writer.close()  # a second close is harmless


async def test_the_writer_thread_is_freed_when_its_task_is_cancelled(tmp_path: Path) -> None:
    """Cancelled without a close (a loop torn down), the thread leaves its batch loop, so
    nothing is left blocked on the queue for the interpreter to wait for at exit."""
    writer = await LedgerWriter(tmp_path / "ledger.sqlite3").__aenter__()
    await writer.write(insert("one"))
    task = next(t for t in asyncio.all_tasks() if t.get_name() == "ledger-writer")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer.close()
    conn = writer._conn
    assert conn is not None
    assert await asyncio.wait_for(conn.run(lambda c: c.total_changes >= 0), 10)
    await conn.close()
