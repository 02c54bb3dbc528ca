"""`edge-gateway discover`: the gateways that answer on this LAN, found over zeroconf.

Browses `_edge-gateway._tcp` for `--timeout` seconds and prints each gateway's store and
gateway id, address, port, scheme and certificate fingerprint (or, with `--json`, the whole
record). Exits 0 when at least one answered, 1 when none did, 2 when this machine has no
interface to browse on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from edge.api.discovery import DiscoveryError, browse
from edge.cli.common import print_table


def register(sub: Any) -> None:
    parser = sub.add_parser("discover", help="list the gateways on this LAN (zeroconf)")
    parser.add_argument(
        "--timeout", type=float, default=3.0, metavar="S", help="seconds to listen (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_discover)


def _discover(args: argparse.Namespace) -> int:
    timeout = min(max(args.timeout, 0.5), 120.0)
    try:
        found = asyncio.run(browse(timeout))
    except DiscoveryError as exc:
        print(f"discover: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([record.as_json() for record in found], indent=2))
    elif found:
        print_table(
            ("STORE", "GATEWAY", "ADDRESS", "PORT", "SCHEME", "SHA-256"),
            [
                (
                    r.store_id,
                    r.gateway_id,
                    ", ".join(r.addresses) or r.host,
                    str(r.port),
                    r.scheme,
                    r.tls_sha256 or "-",
                )
                for r in found
            ],
        )
    else:
        print(f"no gateway answered within {timeout:g} s", file=sys.stderr)
    return 0 if found else 1
