"""`edge-gateway doctor`: checks the gateway's configuration, ledger, disk, clock, devices,
broker, HQ link and LAN certificate; one `PASS|SKIP|WARN|FAIL  check  detail — what to do`
line each (docs/doctor.md).

Exit codes: 0 every check passed (or could not be run here), 1 warnings only, 2 at least
one failure. Uses the same --config / EDGE_CONFIG / EDGE_* settings as `run`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "doctor", help="check configuration, ledger, disk, clock, devices, broker and HQ link"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--user",
        default=None,
        help="the gateway's service user, for permission checks (default: the data"
        " directory's owner)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="limit for each network check (default 5)",
    )
    parser.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    # the checks load device, MQTT and TLS libraries: only when doctor runs
    from edge.doctor.findings import exit_code, render  # noqa: PLC0415
    from edge.doctor.runner import Options, diagnose  # noqa: PLC0415

    options = Options(
        config_path=Path(args.config) if args.config else None,
        user=args.user,
        timeout_s=args.timeout,
    )
    findings = diagnose(options)
    code = exit_code(findings)
    if args.json:
        print(
            json.dumps(
                {"exit_code": code, "checks": [f.as_json() for f in findings]},
                indent=2,
                default=str,
            )
        )
        return code
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    for line in render(findings, colour=colour):
        print(line)
    return code
