"""Operator commands: config check, API clients, managers, audit verification."""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.cli.common import open_ledger, print_table, settings_from, write
from edge.contract.timefmt import parse_iso, utcnow
from edge.domain.pins import new_pin_problem
from edge.errors import ConfigError, EdgeError
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
    add.add_argument(
        "--lane", help="bind a register or handheld to this lane (its events and badge grants)"
    )
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


def _lane_problem(role: str, lane: str | None) -> str | None:
    """Why `--lane` cannot be used as given, or None."""
    if lane is None:
        return None
    if role not in people.LANE_ROLES:
        return f"--lane is for register and handheld clients; a {role} client sees every lane"
    if not re.fullmatch(people.LANE_PATTERN, lane):
        return "a lane is 1 to 48 letters, digits, '.', '_' or '-', as named in [devices]"
    return None


def _clients_add(args: argparse.Namespace) -> int:
    problem = _lane_problem(args.role, args.lane)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    conn = open_ledger(settings_from(args))
    with write(conn) as at:
        taken = people.active_client_named(conn, args.name)
        if taken is not None:
            print(
                f"an active client is already named {args.name!r} ({taken}): choose another"
                " name, or revoke that client first",
                file=sys.stderr,
            )
            return 2
        client_id, secret = people.add_client(conn, args.name, args.role, at, args.lane)
    if args.json:
        print(
            json.dumps(
                {
                    "client_id": client_id,
                    "client_secret": secret,
                    "role": args.role,
                    "lane": args.lane,
                }
            )
        )
    else:
        print(f"client_id:     {client_id}\nclient_secret: {secret}\nrole:          {args.role}")
        if args.lane is not None:
            print(f"lane:          {args.lane}")
        print("The secret is shown only now; the gateway keeps only its hash.", file=sys.stderr)
    return 0


def _clients_list(args: argparse.Namespace) -> int:
    conn = open_ledger(settings_from(args))
    rows = [
        {
            "client_id": r["client_id"],
            "name": r["name"],
            "role": r["role"],
            "lane": r["lane"],
            "created_at": r["created_at"],
            "revoked_at": r["revoked_at"],
        }
        for r in people.list_clients(conn)
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    print_table(
        ("CLIENT ID", "ROLE", "LANE", "STATE", "NAME"),
        [
            (
                r["client_id"],
                r["role"],
                r["lane"] or "-",
                f"revoked {r['revoked_at']}" if r["revoked_at"] else "active",
                r["name"],
            )
            for r in rows
        ],
    )
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


class _PinRefused(EdgeError):
    """Why no PIN was taken, in one line for the operator."""


def _read_pin(args: argparse.Namespace) -> str | None:
    """The new PIN, from standard input or asked twice at the terminal; never echoed."""
    if args.no_pin:
        return None
    if args.pin_stdin:
        pin = sys.stdin.readline().strip()
    elif not sys.stdin.isatty():
        msg = "no terminal to ask for the PIN: pipe it in with --pin-stdin, or use --no-pin --badge"
        raise _PinRefused(msg)
    else:
        try:
            pin = getpass.getpass("PIN: ")
            again = getpass.getpass("PIN again: ")
        except EOFError:
            msg = "no PIN entered; nothing saved"
            raise _PinRefused(msg) from None
        if pin != again:
            msg = "the two PINs differ; nothing saved"
            raise _PinRefused(msg)
    problem = new_pin_problem(pin)
    if problem is not None:
        raise _PinRefused(f"PIN refused: {problem}")
    return pin


def _managers_add(args: argparse.Namespace) -> int:
    if args.badge is not None and not re.fullmatch(r"(?:[0-9A-Fa-f]{2}[: ]?){4,10}", args.badge):
        print("a badge UID is 4 to 10 bytes in hex", file=sys.stderr)
        return 2
    try:
        pin = _read_pin(args)
    except _PinRefused as exc:
        print(exc, file=sys.stderr)
        return 2
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
    now = utcnow()
    print_table(
        ("MANAGER", "APPROVES WITH", "STATE", "NAME"),
        [
            (
                r["manager_id"],
                "+".join(k for k in ("pin", "badge") if r[k]),
                _lock_state(r["locked_until"], now),
                r["name"],
            )
            for r in rows
        ],
    )
    return 0


def _lock_state(locked_until: str | None, now: datetime) -> str:
    if locked_until and parse_iso(locked_until) > now:
        return f"locked until {locked_until}"
    return "active"


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
