"""API clients and managers: secrets and PINs stored only as hashes.

Client secrets are 256-bit random values, so a SHA-256 digest is enough to store them and
fast enough for every token request. Manager PINs are short, so they get Argon2id, a slow
memory-hard KDF, and wrong attempts lock the manager out for a while.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING

from edge.contract.timefmt import iso, parse_iso
from edge.ledger.audit import append_audit

ROLES = ("register", "handheld", "admin", "monitor")
# Roles that serve one lane: they may be bound to it (a lane is named as in [devices]).
LANE_ROLES = ("register", "handheld")
LANE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}"
if TYPE_CHECKING:
    from argon2 import PasswordHasher


@cache
def _pin_hasher() -> PasswordHasher:
    """Argon2 (and its cffi bindings) load with the first PIN set or checked, not with the
    daemon: most gateways run for hours between manager approvals."""
    from argon2 import PasswordHasher  # noqa: PLC0415 - see the docstring

    # Moderate cost: a Raspberry Pi verifies a PIN in well under half a second.
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored)


def hash_pin(pin: str) -> str:
    return _pin_hasher().hash(pin)


def pin_matches(pin: str, stored: str) -> bool:
    """Slow on purpose; call it off the event loop."""
    from argon2.exceptions import InvalidHashError, VerificationError  # noqa: PLC0415

    try:
        return _pin_hasher().verify(stored, pin)
    except (VerificationError, InvalidHashError):
        return False


def badge_hash(uid_hex: str) -> str:
    """Badge UIDs are stored hashed so the database does not list them."""
    normalized = uid_hex.replace(":", "").replace(" ", "").upper()
    return hashlib.sha256(f"edge-badge:{normalized}".encode()).hexdigest()


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    role: str
    secret_hash: str
    revoked: bool
    lane: str | None = None  # a lane-bound register or handheld serves only this lane


def add_client(
    conn: sqlite3.Connection, name: str, role: str, at: datetime, lane: str | None = None
) -> tuple[str, str]:
    """Create a client; returns (client_id, secret). The secret is not kept.

    Only a register or handheld may be bound to a `lane` (the schema refuses the others too).
    """
    if lane is not None and (role not in LANE_ROLES or not re.fullmatch(LANE_PATTERN, lane)):
        raise ValueError(f"a {role} client cannot be bound to that lane")
    client_id = f"cl_{secrets.token_hex(8)}"
    secret = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO clients (client_id, name, role, secret_hash, created_at, lane)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (client_id, name, role, hash_secret(secret), iso(at), lane),
    )
    detail: dict[str, object] = {"name": name, "role": role}
    if lane is not None:
        detail["lane"] = lane
    append_audit(
        conn,
        at=at,
        actor="cli",
        action="client.added",
        subject=client_id,
        detail=detail,
    )
    return client_id, secret


def revoke_client(conn: sqlite3.Connection, client_id: str, at: datetime) -> bool:
    cur = conn.execute(
        "UPDATE clients SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL",
        (iso(at), client_id),
    )
    if cur.rowcount:
        append_audit(
            conn, at=at, actor="cli", action="client.revoked", subject=client_id, detail={}
        )
    return cur.rowcount > 0


def get_client(conn: sqlite3.Connection, client_id: str) -> Client | None:
    row = conn.execute("SELECT * FROM clients WHERE client_id = ?", (client_id,)).fetchone()
    if row is None:
        return None
    return Client(
        row["client_id"],
        row["name"],
        row["role"],
        row["secret_hash"],
        row["revoked_at"] is not None,
        row["lane"],
    )


def list_clients(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return list(conn.execute("SELECT * FROM clients ORDER BY created_at"))


def active_client_named(conn: sqlite3.Connection, name: str) -> str | None:
    """The id of the active client called `name`: two would be told apart only by id."""
    row = conn.execute(
        "SELECT client_id FROM clients WHERE name = ? AND revoked_at IS NULL LIMIT 1", (name,)
    ).fetchone()
    return None if row is None else str(row[0])


def add_manager(
    conn: sqlite3.Connection,
    manager_id: str,
    name: str,
    pin_hash: str | None,
    badge_uid: str | None,
    at: datetime,
) -> None:
    conn.execute(
        "INSERT INTO managers (manager_id, name, pin_hash, badge_hash, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (manager_id) DO UPDATE SET name = excluded.name,"
        " pin_hash = coalesce(excluded.pin_hash, pin_hash),"
        " badge_hash = coalesce(excluded.badge_hash, badge_hash), removed_at = NULL,"
        " failed_pins = 0, locked_until = NULL",
        (manager_id, name, pin_hash, badge_hash(badge_uid) if badge_uid else None, iso(at)),
    )
    append_audit(
        conn,
        at=at,
        actor="cli",
        action="manager.saved",
        subject=manager_id,
        detail={"name": name, "pin": pin_hash is not None, "badge": badge_uid is not None},
    )


def remove_manager(conn: sqlite3.Connection, manager_id: str, at: datetime) -> bool:
    cur = conn.execute(
        "UPDATE managers SET removed_at = ?, pin_hash = NULL, badge_hash = NULL"
        " WHERE manager_id = ? AND removed_at IS NULL",
        (iso(at), manager_id),
    )
    if cur.rowcount:
        append_audit(
            conn, at=at, actor="cli", action="manager.removed", subject=manager_id, detail={}
        )
    return cur.rowcount > 0


def list_managers(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return list(
        conn.execute(
            "SELECT manager_id, name, pin_hash IS NOT NULL AS has_pin,"
            " badge_hash IS NOT NULL AS has_badge, created_at, locked_until"
            " FROM managers WHERE removed_at IS NULL ORDER BY manager_id"
        )
    )


def manager_pin_hash(
    conn: sqlite3.Connection, manager_id: str, now: datetime
) -> tuple[str | None, datetime | None]:
    """(PIN hash, locked-until if locked now) of an active manager."""
    row = conn.execute(
        "SELECT pin_hash, locked_until FROM managers WHERE manager_id = ? AND removed_at IS NULL",
        (manager_id,),
    ).fetchone()
    if row is None:
        return None, None
    locked = parse_iso(row["locked_until"]) if row["locked_until"] else None
    return row["pin_hash"], locked if locked and locked > now else None


def manager_for_badge(conn: sqlite3.Connection, uid_hex: str) -> str | None:
    row = conn.execute(
        "SELECT manager_id FROM managers WHERE badge_hash = ? AND removed_at IS NULL",
        (badge_hash(uid_hex),),
    ).fetchone()
    return None if row is None else str(row[0])


def record_pin_attempt(
    conn: sqlite3.Connection,
    manager_id: str,
    *,
    ok: bool,
    actor: str,
    at: datetime,
    max_failures: int,
    lockout: timedelta,
) -> datetime | None:
    """Audit a PIN attempt and count failures; returns the lock end if this locked it."""
    if ok:
        conn.execute(
            "UPDATE managers SET failed_pins = 0, locked_until = NULL WHERE manager_id = ?",
            (manager_id,),
        )
        return None
    row = conn.execute(
        "UPDATE managers SET failed_pins = failed_pins + 1 WHERE manager_id = ?"
        " RETURNING failed_pins",
        (manager_id,),
    ).fetchone()
    failures = int(row[0]) if row else 0
    locked_until = None
    if row is not None and failures >= max_failures:
        locked_until = at + lockout
        conn.execute(
            "UPDATE managers SET failed_pins = 0, locked_until = ? WHERE manager_id = ?",
            (iso(locked_until), manager_id),
        )
    append_audit(
        conn,
        at=at,
        actor=actor,
        action="approval.pin_failed",
        subject=manager_id,
        detail={"failures": failures, "locked_until": iso(locked_until) if locked_until else None},
    )
    return locked_until
