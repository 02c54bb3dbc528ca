"""Operator commands: config check, API clients, managers, audit verification."""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from pathlib import Path
from typing import Any

from edge.cli.common import open_ledger, settings_from, write
from edge.errors import ConfigError
from edge.ledger import people
from edge.ledger.audit import verify_audit
from edge.settings import load_settings


def register(sub: Any) -> None:
    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_cmd", required=True)
    check = config_sub.add_parser("check", help="validate a configuration file")
    check.add_argument("path", help="TOML file to check (EDGE_* variables apply too)")
    check.set_defaults(func=_config_check)

    clients = sub.add_parser("clients", help="API clients (registers, handhelds, monitors)")
    clients_sub = clients.add_subparsers(dest="clients_cmd", required=True)
    add = clients_sub.add_parser("add", help="create a client; prints its secret once")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=people.ROLES)
    add.add_argument("--json", action="store_true", help="print the credentials as JSON")
    add.set_defaults(func=_clients_add)
    lst = clients_sub.add_parser("list", help="list clients")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_clients_list)
    revoke = clients_sub.add_parser("revoke", help="revoke a client's access")
    revoke.add_argument("client_id")
    revoke.set_defaults(func=_clients_revoke)

    managers = sub.add_parser("managers", help="managers who approve refunds")
    managers_sub = managers.add_subparsers(dest="managers_cmd", required=True)
    madd = managers_sub.add_parser("add", help="add or update a manager (PIN and/or badge)")
    madd.add_argument("manager_id")
    madd.add_argument("--name", required=True)
    madd.add_argument("--badge", metavar="UID", help="NFC badge UID in hex")
    madd.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
    madd.add_argument("--no-pin", action="store_true", help="badge only, no PIN")
    madd.set_defaults(func=_managers_add)
    mlist = managers_sub.add_parser("list", help="list managers")
    mlist.add_argument("--json", action="store_true")
    mlist.set_defaults(func=_managers_list)
    mrm = managers_sub.add_parser("remove", help="remove a manager (PIN and badge stop working)")
    mrm.add_argument("manager_id")
    mrm.set_defaults(func=_managers_remove)

    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_cmd", required=True)
    verify = audit_sub.add_parser("verify", help="check the hash chain of the audit log")
    verify.set_defaults(func=_audit_verify)


def _config_check(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(Path(args.path))
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"{args.path}: {key}: {message}", file=sys.stderr)
        return 1
    print(
        f"{args.path}: OK (store {settings.store_id}, gateway {settings.gateway_id}, "
        f"data in {settings.data_dir})"
    )
    return 0


def _clients_add(args: argparse.Namespace) -> int:
    conn = open_ledger(settings_from(args))
    with write(conn) as at:
        client_id, secret = people.add_client(conn, args.name, args.role, at)
    if args.json:
        print(json.dumps({"client_id": client_id, "client_secret": secret, "role": args.role}))
    else:
        print(f"client_id:     {client_id}\nclient_secret: {secret}\nrole:          {args.role}")
        print("The secret is shown only now; the gateway keeps only its hash.", file=sys.stderr)
    return 0


def _clients_list(args: argparse.Namespace) -> int:
    conn = open_ledger(settings_from(args))
    rows = [
        {
            "client_id": r["client_id"],
            "name": r["name"],
            "role": r["role"],
            "created_at": r["created_at"],
            "revoked_at": r["revoked_at"],
        }
        for r in people.list_clients(conn)
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
        print(f"{r['client_id']}  {r['role']:<9} {state:<32} {r['name']}")
    return 0


def _clients_revoke(args: argparse.Namespace) -> int:
    conn = open_ledger(settings_from(args))
    with write(conn) as at:
        done = people.revoke_client(conn, args.client_id, at)
    if not done:
        print(f"no active client {args.client_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.client_id}")
    return 0


def _read_pin(args: argparse.Namespace) -> str | None:
    if args.no_pin:
        return None
    pin = sys.stdin.readline().strip() if args.pin_stdin else getpass.getpass("PIN: ")
    if not re.fullmatch(r"[0-9]{4,12}", pin):
        raise SystemExit("a PIN is 4 to 12 digits")
    return pin


def _managers_add(args: argparse.Namespace) -> int:
    if args.badge is not None and not re.fullmatch(r"(?:[0-9A-Fa-f]{2}[: ]?){4,10}", args.badge):
        print("a badge UID is 4 to 10 bytes in hex", file=sys.stderr)
        return 2
    pin = _read_pin(args)
    if pin is None and args.badge is None:
        print("a manager needs a PIN, a badge, or both", file=sys.stderr)
        return 2
    pin_hash = people.hash_pin(pin) if pin is not None else None
    conn = open_ledger(settings_from(args))
    with write(conn) as at:
        people.add_manager(conn, args.manager_id, args.name, pin_hash, args.badge, at)
    print(f"saved manager {args.manager_id}")
    return 0


def _managers_list(args: argparse.Namespace) -> int:
    conn = open_ledger(settings_from(args))
    rows = [
        {
            "manager_id": r["manager_id"],
            "name": r["name"],
            "pin": bool(r["has_pin"]),
            "badge": bool(r["has_badge"]),
            "locked_until": r["locked_until"],
        }
        for r in people.list_managers(conn)
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        how = "+".join(k for k in ("pin", "badge") if r[k])
        print(f"{r['manager_id']:<12} {how:<10} {r['name']}")
    return 0


def _managers_remove(args: argparse.Namespace) -> int:
    conn = open_ledger(settings_from(args))
    with write(conn) as at:
        done = people.remove_manager(conn, args.manager_id, at)
    if not done:
        print(f"no active manager {args.manager_id}", file=sys.stderr)
        return 1
    print(f"removed manager {args.manager_id}")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    conn = open_ledger(settings_from(args))
    count, problems = verify_audit(conn)
    for problem in problems:
        print(f"audit: {problem}", file=sys.stderr)
    if problems:
        print(f"audit log BROKEN: {len(problems)} problem(s) in {count} record(s)")
        return 1
    print(f"audit log OK: {count} record(s), chain intact")
    return 0
