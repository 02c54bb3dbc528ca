"""The data directory and the ledger: present, the service user's own, intact, current, and
on a disk with room to write.

The ledger is opened read-only (SQLite's `mode=ro`), so `doctor` can run beside the
gateway and never creates or changes a database. (Reading a WAL database may leave its
`-wal` and `-shm` files behind; SQLite gives them the ledger's owner, as the gateway's own.)
"""

from __future__ import annotations

import shutil
import sqlite3
import stat

from edge.doctor.access import ServiceUser, can_access
from edge.doctor.findings import Finding, failed, passed, skipped, warned
from edge.ledger.db import migrations, open_read_only
from edge.ledger.lock import holder_of
from edge.settings import Settings

MB = 1024 * 1024
SECRET_FILES = ("ledger.sqlite3", "token-signing.key", "tls/lan-key.pem")


def data_dir(settings: Settings, user: ServiceUser) -> Finding:
    folder = settings.data_dir
    if not folder.is_dir():
        return warned(
            "data-dir",
            f"{folder} does not exist yet",
            "start the gateway once (it creates it), or check data_dir",
        )
    if not can_access(user, folder, write=True):
        return failed(
            "data-dir",
            f"{folder} is not writable by {user.name}, the gateway's user",
            f"chown -R {user.name} {folder}",
        )
    open_to_others = []
    for name in SECRET_FILES:
        path = folder / name
        try:
            if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                open_to_others.append(name)
        except OSError:
            continue
    if open_to_others:
        return warned(
            "data-dir",
            f"{', '.join(open_to_others)} in {folder} can be read by others",
            f"chmod 600 them (the gateway also tightens them at start); run as {user.name}",
        )
    return passed("data-dir", f"{folder}, writable by {user.name}, the gateway's user")


def gateway_process(settings: Settings) -> Finding:
    holder = holder_of(settings.data_dir)
    if holder is None:
        return warned(
            "gateway",
            f"not running on {settings.data_dir} (nothing holds its lock)",
            "start it: systemctl start edge-gateway (journalctl -u edge-gateway says why it"
            " stopped)",
        )
    return passed("gateway", f"running on {settings.data_dir} (pid {holder or 'unknown'})")


def ledger(
    settings: Settings, user: ServiceUser
) -> tuple[sqlite3.Connection | None, list[Finding]]:
    """The ledger's findings, and a read-only connection for the checks that read it."""
    path = settings.db_path
    if not path.is_file():
        return None, [
            warned(
                "database",
                f"no ledger at {path} yet",
                "start the gateway once: it creates the ledger",
            )
        ]
    if not can_access(user, path, write=True):
        access = failed(
            "database-access",
            f"{path} is not readable and writable by {user.name}, the gateway's user",
            f"chown {user.name} {path}* and chmod 600 {path}",
        )
    else:
        access = passed("database-access", f"readable and writable by {user.name}")
    try:
        conn = open_read_only(path)
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(10)")]
    except sqlite3.Error as exc:
        return None, [
            access,
            failed(
                "database",
                f"{path} cannot be read as a ledger: {exc}",
                "stop the gateway and restore the latest backup (docs/backup.md)",
            ),
        ]
    if problems != ["ok"]:
        return conn, [
            access,
            failed(
                "database",
                f"quick_check found damage: {'; '.join(problems[:3])}",
                "stop the gateway and restore the latest backup (docs/backup.md)",
            ),
        ]
    return conn, [access, passed("database", f"{path}: quick_check ok"), schema(conn)]


def schema(conn: sqlite3.Connection) -> Finding:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    newest = migrations()[-1][0]
    if version == newest:
        return passed("database-schema", f"version {version}, current")
    if version < newest:
        return warned(
            "database-schema",
            f"version {version}; this edge-gateway brings it to {newest}",
            "restart the gateway: it migrates the ledger at start",
        )
    return failed(
        "database-schema",
        f"version {version} was written by a newer edge-gateway (this one knows {newest})",
        "upgrade edge-gateway to the version that wrote it",
    )


def disk_space(settings: Settings) -> Finding:
    folder = settings.data_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        usage = shutil.disk_usage(folder)
    except OSError as exc:
        return skipped("disk-space", f"cannot read the free space of {folder}: {exc}")
    free_mb = usage.free // MB
    limits = settings.storage
    detail = f"{free_mb:,} MiB free of {usage.total // MB:,} MiB on {folder}'s filesystem"
    data = {"free_bytes": usage.free, "total_bytes": usage.total}
    action = (
        "free space (old logs: journalctl --vacuum-size=100M), or move data_dir to a larger"
        " disk; refunds get 503 storage-unavailable when it is full"
    )
    if free_mb < limits.free_fail_mb:
        return failed("disk-space", f"{detail}, below {limits.free_fail_mb} MiB", action, **data)
    if free_mb < limits.free_warn_mb:
        return warned("disk-space", f"{detail}, below {limits.free_warn_mb} MiB", action, **data)
    return passed("disk-space", detail, **data)
