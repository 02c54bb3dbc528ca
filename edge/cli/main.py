"""`edge-gateway` entry point: dispatches to the command modules.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func(args) -> int` as the handler.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edge import __version__
from edge.cli import (
    admin_cmds,
    devices_cmd,
    discover_cmd,
    doctor_cmd,
    hq_cmds,
    recon_cmds,
    run_cmd,
    storage_cmds,
    tls_cmd,
)
from edge.errors import ConfigError

COMMAND_MODULES = [
    run_cmd,
    admin_cmds,
    devices_cmd,
    hq_cmds,
    recon_cmds,
    tls_cmd,
    discover_cmd,
    doctor_cmd,
    storage_cmds,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-gateway", description="In-store edge gateway for refunds and scanners."
    )
    parser.add_argument("--version", action="version", version=f"edge-gateway {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="TOML configuration file (default: built-in defaults; EDGE_* env overrides)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import os  # noqa: PLC0415 - only the entry point reads the environment for the path

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is None:
        args.config = os.environ.get("EDGE_CONFIG") or None
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"config error: {key}: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
