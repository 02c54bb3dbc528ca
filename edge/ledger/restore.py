"""Putting a verified backup in place of the data directory's ledger and keys.

Only while no gateway runs on the directory (its lock, `edge.ledger.lock`, is taken here
for the whole restore), and only a backup that verifies (`edge.ledger.backup.read_backup`)
and was made by this store and gateway unless forced. Nothing is deleted: what the backup
replaces is kept in `before-restore-<time>/` beside it. Each file is swapped by a rename,
so after a crash at any point the ledger is the old one or the restored one, whole; the
current ledger's write-ahead log is folded into it first, so the copy kept aside is one
self-contained file too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from edge.contract.timefmt import utcnow
from edge.ledger.backup import (
    EXTRA_FILES,
    LEDGER,
    BackupError,
    Manifest,
    fsync_dir,
    read_backup,
)
from edge.ledger.db import migrations
from edge.ledger.lock import DataDirLock


class ForeignBackup(BackupError):
    """The backup was made by another store or gateway."""


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    kept_aside: Path


def restore_backup(
    archive: Path, data_dir: Path, *, store_id: str, gateway_id: str, force: bool = False
) -> RestoreResult:
    """Replace the ledger and keys in `data_dir` with those of `archive`.

    Raises DataDirBusy while a gateway runs on `data_dir`, BackupError when the backup does
    not verify or is from a newer version, ForeignBackup when it belongs to another store
    or gateway (unless `force`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with DataDirLock(data_dir):
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        work = data_dir / f".restore-{stamp}"
        try:
            manifest = read_backup(archive, work)
            _check(manifest, store_id=store_id, gateway_id=gateway_id, force=force)
            aside = data_dir / f"before-restore-{stamp}"
            aside.mkdir(mode=0o700)
            _swap(data_dir, work, aside)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _own_like(data_dir, [aside, *aside.rglob("*"), *_restored(data_dir)])
    return RestoreResult(manifest, aside)


def _check(manifest: Manifest, *, store_id: str, gateway_id: str, force: bool) -> None:
    newest = migrations()[-1][0]
    if manifest.schema_version > newest:
        raise BackupError(
            f"the backup's ledger has schema {manifest.schema_version}, newer than this"
            f" edge-gateway knows ({newest}): restore it with edge-gateway"
            f" {manifest.gateway_version} or newer"
        )
    made_by = (manifest.store_id, manifest.gateway_id)
    if made_by != (store_id, gateway_id) and not force:
        raise ForeignBackup(
            f"the backup was made by store {made_by[0]} gateway {made_by[1]}, and this is"
            f" store {store_id} gateway {gateway_id}: check the file, or pass --force to"
            " restore it here anyway"
        )


def _swap(data_dir: Path, work: Path, aside: Path) -> None:
    ledger = data_dir / LEDGER
    _fold_wal(ledger)
    for suffix in ("-wal", "-shm"):  # left only if the old ledger could not be opened
        leftover = data_dir / (LEDGER + suffix)
        if leftover.exists():
            os.replace(leftover, aside / leftover.name)
    for name in (LEDGER, *EXTRA_FILES):
        current, restored = data_dir / name, work / name
        if current.exists():
            (aside / name).parent.mkdir(mode=0o700, exist_ok=True)
            os.link(current, aside / name)  # the old file stays whole under its new name
        if restored.exists():
            current.parent.mkdir(mode=0o700, exist_ok=True)
            os.replace(restored, current)  # one rename: old or new, never neither
            fsync_dir(current.parent)


def _fold_wal(ledger: Path) -> None:
    """Checkpoint the current ledger's WAL into it (closing the last connection removes
    the WAL); a ledger that cannot be opened is kept aside as its files are."""
    if not ledger.exists():
        return
    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(ledger, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()


def _restored(data_dir: Path) -> list[Path]:
    paths = [data_dir / name for name in (LEDGER, *EXTRA_FILES)]
    paths.append(data_dir / "tls")
    return [path for path in paths if path.exists()]


def _own_like(data_dir: Path, paths: list[Path]) -> None:
    """Run as root, give what was written the data directory's owner (the service user),
    or the gateway could not open its own ledger."""
    if os.geteuid() != 0:
        return
    owner = data_dir.stat()
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)
