"""Backups of the data directory: a consistent ledger copy taken while the gateway runs, and
the keys that make a replacement box this same gateway, in one verified archive.

The ledger is copied with SQLite's online backup API in one step, inside one read
transaction that also counts the rows of the key tables: the copy is the ledger as of one
commit, however busy the writer is (in WAL mode a reader never blocks it), and the counts
are those of that same commit. The copy is checked (`PRAGMA integrity_check`, schema
version, row counts) before it is archived, and the archive is read back and checked the
way `restore` checks it before it is renamed to its final name: a backup that exists has
been verified.

The archive is a gzip-compressed tar, owner-only (0600, it holds payment tokens and keys):

- `manifest.json`: who made it (store, gateway, version), when, the ledger's schema
  version and row counts, and the SHA-256 of every other member;
- `ledger.sqlite3`: the ledger, one self-contained file (no WAL);
- `token-signing.key`: so the registers' access tokens stay valid after a restore;
- `tls/lan-cert.pem`, `tls/lan-key.pem`: the certificate made at first start, whose
  fingerprint the registers have pinned (a configured certificate lives outside the data
  directory and is the store's to keep).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.contract.timefmt import iso, utcnow
from edge.errors import EdgeError
from edge.ledger.db import open_read_only

FORMAT = "edge-gateway-backup"
MANIFEST = "manifest.json"
LEDGER = "ledger.sqlite3"
# Besides the ledger, what makes a replacement box the same gateway to its registers.
EXTRA_FILES = ("token-signing.key", "tls/lan-cert.pem", "tls/lan-key.pem")
MEMBERS = frozenset({MANIFEST, LEDGER, *EXTRA_FILES})
# Counted when the copy is taken and again when it is checked.
KEY_TABLES = (
    "sales",
    "returns",
    "return_tenders",
    "store_credits",
    "outbox",
    "audit_log",
    "idempotency_keys",
    "clients",
    "managers",
)
_CHUNK = 1 << 20


class BackupError(EdgeError):
    """A backup could not be made, or a backup file is not one this gateway can restore."""


@dataclass(frozen=True)
class LedgerFacts:
    """What a copy must show to be the ledger it was taken from."""

    schema_version: int
    counts: dict[str, int]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = FORMAT
    format_version: int = 1
    created_at: str
    gateway_version: str
    store_id: str
    gateway_id: str
    schema_version: int = Field(ge=0)
    counts: dict[str, int]
    files: dict[str, str]  # member name -> SHA-256 (hex)

    @property
    def facts(self) -> LedgerFacts:
        return LedgerFacts(self.schema_version, dict(self.counts))


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    manifest: Manifest


def ledger_facts(conn: sqlite3.Connection) -> LedgerFacts:
    """Schema version and the key tables' row counts, read in the caller's transaction."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    present = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
    }
    counts = {}
    for table in KEY_TABLES:
        if table in present:  # table names come from KEY_TABLES, never from input
            (counts[table],) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    return LedgerFacts(int(version), counts)


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write (opening it never creates a database)."""
    if not path.is_file():
        raise BackupError(f"there is no ledger at {path}")
    try:
        return open_read_only(path)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {path}: {exc}") from None


def snapshot_ledger(source: Path, dest: Path) -> LedgerFacts:
    """Copy the ledger at `source` to the new file `dest` as of one commit, safe while the
    gateway writes; the facts of that commit."""
    src = _read_only(source)
    try:
        src.execute("BEGIN")  # the counts and the copy see the same commit
        facts = ledger_facts(src)
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            src.backup(dst)  # one step: the whole copy inside the read transaction above
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            dst.close()
        src.execute("COMMIT")
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy {source}: {exc}") from None
    finally:
        src.close()
    return facts


def verify_ledger(path: Path, expected: LedgerFacts) -> None:
    """Check a ledger copy: SQLite's integrity check, the schema version and the row counts
    it must have. Raises BackupError saying what is wrong."""
    conn = _read_only(path)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
        if problems != ["ok"]:
            raise BackupError(f"{path.name} is damaged: " + "; ".join(problems[:5]))
        facts = ledger_facts(conn)
    except sqlite3.Error as exc:
        raise BackupError(f"{path.name} is not a readable ledger: {exc}") from None
    finally:
        conn.close()
    if facts != expected:
        raise BackupError(
            f"{path.name} does not match what was copied: {_difference(expected, facts)}"
        )


def _difference(expected: LedgerFacts, found: LedgerFacts) -> str:
    out = []
    if expected.schema_version != found.schema_version:
        out.append(f"schema {found.schema_version}, expected {expected.schema_version}")
    for table in sorted(expected.counts.keys() | found.counts.keys()):
        want, got = expected.counts.get(table), found.counts.get(table)
        if want != got:
            out.append(f"{table}: {got} rows, expected {want}")
    return "; ".join(out)


def archive_name(store_id: str, gateway_id: str) -> str:
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return f"edge-gateway-{store_id}-{gateway_id}-{stamp}.tar.gz"


def write_backup(
    data_dir: Path, dest: Path, *, store_id: str, gateway_id: str, version: str
) -> BackupResult:
    """Back up `data_dir` to the file `dest` (or a dated file in the directory `dest`).

    The archive is written beside its final name, read back and verified, then renamed:
    `dest` is either the previous file or a new verified backup, never half of one.
    """
    final = dest / archive_name(store_id, gateway_id) if dest.is_dir() else dest
    if not final.parent.is_dir():
        raise BackupError(f"{final.parent} is not a directory")
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        with scratch(final.parent) as work:
            copy = work / LEDGER
            facts = snapshot_ledger(data_dir / LEDGER, copy)
            files = {LEDGER: copy}
            files.update({n: data_dir / n for n in EXTRA_FILES if (data_dir / n).is_file()})
            manifest = Manifest(
                created_at=iso(utcnow()),
                gateway_version=version,
                store_id=store_id,
                gateway_id=gateway_id,
                schema_version=facts.schema_version,
                counts=facts.counts,
                files={name: _sha256(path) for name, path in files.items()},
            )
            _write_archive(temporary, manifest, files)
            read_backup(temporary, work / "check")
        os.replace(temporary, final)
        fsync_dir(final.parent)
    except OSError as exc:
        raise BackupError(f"cannot write {final}: {exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return BackupResult(final, final.stat().st_size, manifest)


def _write_archive(path: Path, manifest: Manifest, files: dict[str, Path]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz") as tar:
            text = manifest.model_dump_json(indent=2).encode()
            _add(tar, MANIFEST, io.BytesIO(text), len(text))
            for name, source in files.items():
                with source.open("rb") as data:
                    _add(tar, name, data, os.fstat(data.fileno()).st_size)
        raw.flush()
        os.fsync(raw.fileno())


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(utcnow().timestamp())
    tar.addfile(info, data)


def read_backup(archive: Path, into: Path) -> Manifest:
    """Unpack and verify a backup into the new directory `into`: only the known members,
    each matching its checksum, the ledger intact with the manifest's schema and counts.
    Raises BackupError saying what is wrong; never writes outside `into`."""
    into.mkdir(mode=0o700)
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            manifest = _unpack(tar, into)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise BackupError(f"{archive} is not a readable backup: {exc}") from None
    verify_ledger(into / LEDGER, manifest.facts)
    return manifest


def _unpack(tar: tarfile.TarFile, into: Path) -> Manifest:
    manifest: Manifest | None = None
    found: dict[str, str] = {}
    for member in tar:
        if member.name not in MEMBERS or not member.isfile() or member.name in found:
            raise BackupError(f"unexpected entry {member.name!r}: not an edge-gateway backup")
        data = tar.extractfile(member)
        assert data is not None  # a regular file always has data
        if member.name == MANIFEST:
            manifest = _manifest(data.read(64 * 1024))
            found[MANIFEST] = ""
            continue
        target = into / member.name
        target.parent.mkdir(mode=0o700, exist_ok=True)
        found[member.name] = _copy(data, target)
    if manifest is None:
        raise BackupError("no manifest.json: not an edge-gateway backup")
    found.pop(MANIFEST)
    if found != manifest.files:
        bad = sorted(
            n for n in found.keys() | manifest.files.keys() if found.get(n) != manifest.files.get(n)
        )
        raise BackupError(f"damaged or incomplete: {', '.join(bad)} do not match the manifest")
    if LEDGER not in found:
        raise BackupError("the backup holds no ledger")
    return manifest


def _manifest(raw: bytes) -> Manifest:
    try:
        manifest = Manifest.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise BackupError(f"manifest.json is not valid: {exc}") from None
    if manifest.format != FORMAT or manifest.format_version != 1:
        raise BackupError(f"unknown backup format {manifest.format} {manifest.format_version}")
    return manifest


def _copy(data: IO[bytes], target: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def scratch(folder: Path) -> Iterator[Path]:
    """A private working directory in `folder` (the same filesystem as the result),
    removed afterwards whatever happens."""
    work = Path(tempfile.mkdtemp(prefix=".edge-gateway-", dir=folder))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
