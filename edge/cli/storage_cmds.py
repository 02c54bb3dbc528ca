"""`edge-gateway backup PATH` and `edge-gateway restore PATH` (docs/backup.md).

Exit codes: 0 done; 1 the backup could not be made, or the file is not a backup this
gateway can restore (damaged, from a newer version, or another store's without --force);
2 the configuration is invalid; 3 restore only: the gateway is running on the data
directory (stop it first).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge import __version__
from edge.cli.common import settings_from

EXIT_REFUSED = 1
EXIT_RUNNING = 3


def register(sub: Any) -> None:
    backup = sub.add_parser(
        "backup",
        help="write a verified backup of the ledger and keys (safe while the gateway runs)",
    )
    backup.add_argument(
        "path", help="backup file to write, or a directory to write a dated file into"
    )
    backup.add_argument("--json", action="store_true", help="machine-readable output")
    backup.set_defaults(func=_backup)

    restore = sub.add_parser(
        "restore", help="put a verified backup in place of the ledger and keys (gateway stopped)"
    )
    restore.add_argument("path", help="backup file written by `edge-gateway backup`")
    restore.add_argument(
        "--force", action="store_true", help="restore a backup made by another store or gateway"
    )
    restore.add_argument("--json", action="store_true", help="machine-readable output")
    restore.set_defaults(func=_restore)


def _summary(counts: dict[str, int]) -> str:
    shown = ("sales", "returns", "outbox", "audit_log")
    return ", ".join(f"{counts[t]} {t.replace('_', ' ')}" for t in shown if t in counts)


def _backup(args: argparse.Namespace) -> int:
    from edge.ledger.backup import BackupError, write_backup  # noqa: PLC0415 - on demand

    settings = settings_from(args)
    if args.path.endswith("/") and not Path(args.path).is_dir():
        print(f"backup failed: there is no directory {args.path}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        result = write_backup(
            settings.data_dir,
            Path(args.path),
            store_id=settings.store_id,
            gateway_id=settings.gateway_id,
            version=__version__,
        )
    except BackupError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    manifest = result.manifest
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(result.path),
                    "bytes": result.size,
                    **manifest.model_dump(exclude={"files"}),
                    "files": sorted(manifest.files),
                },
                indent=2,
            )
        )
        return 0
    print(f"wrote {result.path} ({result.size:,} bytes, mode 0600)")
    print(
        f"  ledger: schema {manifest.schema_version}, {_summary(manifest.counts)};"
        " integrity checked and row counts match the running ledger"
    )
    others = sorted(set(manifest.files) - {"ledger.sqlite3"})
    print(f"  also: {', '.join(others) if others else 'no key files yet'}")
    print("  it holds payment tokens and keys: keep it where only store IT can read it")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from edge.ledger.backup import BackupError  # noqa: PLC0415 - on demand
    from edge.ledger.lock import DataDirBusy  # noqa: PLC0415
    from edge.ledger.restore import restore_backup  # noqa: PLC0415

    settings = settings_from(args)
    try:
        result = restore_backup(
            Path(args.path),
            settings.data_dir,
            store_id=settings.store_id,
            gateway_id=settings.gateway_id,
            force=args.force,
        )
    except DataDirBusy as exc:
        print(
            f"restore refused: {exc}; stop it first (systemctl stop edge-gateway)",
            file=sys.stderr,
        )
        return EXIT_RUNNING
    except BackupError as exc:
        print(f"restore refused: {exc}; nothing was changed", file=sys.stderr)
        return EXIT_REFUSED
    manifest = result.manifest
    if args.json:
        print(
            json.dumps(
                {
                    "restored_from": args.path,
                    "kept_aside": str(result.kept_aside),
                    **manifest.model_dump(exclude={"files"}),
                    "files": sorted(manifest.files),
                },
                indent=2,
            )
        )
        return 0
    print(
        f"restored {', '.join(sorted(manifest.files))} from {args.path}"
        f" (made {manifest.created_at} by store {manifest.store_id}"
        f" gateway {manifest.gateway_id})"
    )
    print(f"  ledger: schema {manifest.schema_version}, {_summary(manifest.counts)}")
    print(f"  what it replaced is kept in {result.kept_aside}")
    print("  start the gateway again (systemctl start edge-gateway)")
    return 0
