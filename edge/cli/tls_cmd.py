"""`edge-gateway tls`: the LAN API's certificate, for store IT and for pinning on registers.

`tls show` prints where the certificate and key are, whom the certificate names, until
when it is valid and its SHA-256 fingerprint (what registers pin). `tls generate` makes a
new self-signed certificate at the configured paths; it refuses to replace one without
`--force`, since every register that pinned the old fingerprint must then pin the new one.
The running gateway serves the new certificate after a restart.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edge.api.tls import (
    certificate_paths,
    describe_certificate,
    generate_for,
    serves_tls,
)
from edge.cli.common import settings_from


def register(sub: Any) -> None:
    parser = sub.add_parser("tls", help="show or make the LAN API's TLS certificate")
    actions = parser.add_subparsers(dest="tls_action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="paths, subject, expiry and SHA-256 fingerprint")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_show)
    generate = actions.add_parser(
        "generate", help="make a self-signed certificate and key at the configured paths"
    )
    generate.add_argument(
        "--force", action="store_true", help="replace an existing certificate and key"
    )
    generate.set_defaults(func=_generate)


def _show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    cert_path, key_path = certificate_paths(settings)
    tls = settings.lan.tls
    serving = "https" if serves_tls(settings) else "http"
    out: dict[str, Any] = {
        "mode": tls.mode,
        "scheme": serving,
        "min_version": tls.min_version,
        "cert_file": str(cert_path),
        "key_file": str(key_path),
    }
    try:
        info = describe_certificate(cert_path)
    except (OSError, ValueError) as exc:
        if args.json:
            print(json.dumps({**out, "error": str(exc)}, indent=2))
        else:
            print(f"no usable certificate at {cert_path}: {exc}", file=sys.stderr)
            if tls.cert_file is None:
                print(
                    "the gateway makes one when it starts with TLS on;"
                    " or run `edge-gateway tls generate`",
                    file=sys.stderr,
                )
        return 1
    out.update(
        subject=info.subject,
        issuer=info.issuer,
        self_signed=info.self_signed,
        not_before=info.not_before.isoformat(),
        not_after=info.not_after.isoformat(),
        dns_names=info.dns_names,
        ip_addresses=info.ip_addresses,
        sha256=info.fingerprint,
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    rows = [
        ("LAN API", f"{serving} (mode {tls.mode}, TLS {tls.min_version} or newer)"),
        ("certificate", str(cert_path)),
        ("key", str(key_path)),
        ("subject", info.subject),
        ("issuer", "self-signed" if info.self_signed else info.issuer),
        ("valid", f"{info.not_before:%Y-%m-%d} to {info.not_after:%Y-%m-%d}"),
        ("names", ", ".join(info.dns_names + info.ip_addresses) or "-"),
        ("SHA-256", info.fingerprint),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    cert_path, key_path = certificate_paths(settings)
    existing = [str(p) for p in (cert_path, key_path) if p.exists()]
    if existing and not args.force:
        print(
            f"{' and '.join(existing)} already exist: --force replaces them (registers that"
            " pinned the old fingerprint must pin the new one)",
            file=sys.stderr,
        )
        return 1
    try:
        fingerprint = generate_for(settings)
    except OSError as exc:
        print(f"cannot write the certificate: {exc}", file=sys.stderr)
        return 1
    print(f"certificate  {cert_path}")
    print(f"key          {key_path}")
    print(f"SHA-256      {fingerprint}")
    print("restart the gateway to serve it; registers that pin must pin this fingerprint")
    return 0
