"""`edge-gateway recon`: run the reconciliation checkpoint, print a report, accept a mismatch.

Like the other operator commands these work on the ledger file directly, so they work
whether or not the gateway runs (SQLite's WAL and busy timeout let both write). A report
made here is stored unpublished: the running gateway's HQ link sends it on its next
connect, as it does any report made while the broker was away. An acceptance is audited
with who and why; the gateway clears the mismatch's alert with its next health message.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import json
import sqlite3
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from edge.cli.common import open_ledger, print_table, settings_from, write
from edge.contract.recon import Mismatch, Report
from edge.contract.timefmt import iso, utcnow
from edge.domain.cardguard import contains_pan
from edge.domain.errors import NotFound, PolicyViolation
from edge.errors import StorageError
from edge.ledger import recon
from edge.ledger.outbox import Origin
from edge.settings import Settings

FORMATS = ("table", "json", "csv")
CSV_COLUMNS = (
    "report_id",
    "mismatch_id",
    "kind",
    "return_id",
    "external_ref",
    "sale_id",
    "currency",
    "store_amount",
    "hq_amount",
    "delta",
    "class",
    "pattern",
    "detected_at",
    "age_s",
)
TABLE_COLUMNS = (
    "MISMATCH",
    "KIND",
    "REFUND",
    "CURRENCY",
    "STORE",
    "HQ",
    "DELTA",
    "CLASS",
    "PATTERN",
    "AGE",
)


def register(sub: Any) -> None:
    rec = sub.add_parser("recon", help="reconciliation with HQ: checkpoint, reports, mismatches")
    rec_sub = rec.add_subparsers(dest="recon_cmd", required=True)
    run = rec_sub.add_parser(
        "run", help="run the checkpoint now (refunds HQ has not decided in time); print its report"
    )
    _format_flag(run)
    run.set_defaults(func=_run)
    report = rec_sub.add_parser("report", help="print the latest report, or the one named")
    report.add_argument("report_id", nargs="?", help="a report id (default: the latest)")
    _format_flag(report)
    report.set_defaults(func=_report)
    accept = rec_sub.add_parser(
        "accept", help="accept an open mismatch as a known difference (audited: who and why)"
    )
    accept.add_argument("mismatch_id")
    accept.add_argument("--reason", required=True, help="why it is accepted (for the audit log)")
    accept.add_argument("--by", help="who accepts it (default: the login name)")
    accept.set_defaults(func=_accept)


def _format_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default), json (the report as sent to HQ) or csv (one row per mismatch)",
    )


def _fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A storage failure is one line for the operator, not a traceback (a configuration
    error is left to `main`, which prints every problem it found)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (StorageError, sqlite3.Error) as exc:
            return _fail(f"recon: {' '.join(str(exc).split())}")

    return run


@_guarded
def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    report = asyncio.run(_checkpoint(settings))
    if report is None:  # stored by the run: not being able to read it back is a fault
        return _fail("recon: the checkpoint ran but its report could not be read back")
    _print(report, args.format)
    return 0


async def _checkpoint(settings: Settings) -> Report | None:
    """The checkpoint as the HQ link runs it, on the ledger file; nothing is published."""
    # Imported here: the HQ link's modules (MQTT, metrics) are for this command alone.
    from edge.bus import EventBus  # noqa: PLC0415
    from edge.hqlink.recon import checkpoint_once  # noqa: PLC0415
    from edge.ledger.ledger import Ledger  # noqa: PLC0415

    origin = Origin(settings.store_id, settings.gateway_id)
    async with Ledger(settings.db_path, EventBus(), origin) as ledger:
        result = await checkpoint_once(ledger, settings.recon, utcnow())
        return await ledger.read(lambda conn: recon.report(conn, result.report_id))


@_guarded
def _report(args: argparse.Namespace) -> int:
    conn = open_ledger(settings_from(args))
    if args.report_id is None:
        report = recon.latest_report(conn)
        if report is None:
            return _fail("no reconciliation report yet: run `edge-gateway recon run`")
    else:
        report = recon.report(conn, args.report_id)
        if report is None:
            return _fail(f"no reconciliation report {args.report_id}")
    _print(report, args.format)
    return 0


@_guarded
def _accept(args: argparse.Namespace) -> int:
    who = args.by if args.by is not None else getpass.getuser()
    for flag, value in (("--reason", args.reason), ("--by", who)):
        if contains_pan(value):  # never stored, never echoed
            return _fail(f"{flag} looks like a card number; nothing saved", 2)
    conn = open_ledger(settings_from(args))
    try:
        with write(conn) as at:
            row, _ = recon.accept(conn, args.mismatch_id, who, args.reason, at)
    except NotFound as exc:
        return _fail(exc.detail)
    except PolicyViolation as exc:
        return _fail(exc.detail, 2)
    print(f"accepted {row.mismatch_id} ({row.kind}) by {row.accepted_by}")
    return 0


# ---- output ----------------------------------------------------------------------------


def _print(report: Report, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    elif fmt == "csv":
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(CSV_COLUMNS)
        out.writerows(_csv_row(report, m) for m in report.mismatches)
    else:
        _print_table(report)


def _text(value: str | Decimal | None) -> str:
    """An id or an amount as text; empty when absent."""
    if value is None:
        return ""
    return value if isinstance(value, str) else format(value, "f")


def _csv_row(report: Report, m: Mismatch) -> list[str]:
    return [
        report.report_id,
        m.mismatch_id,
        m.kind,
        _text(m.return_id),
        _text(m.external_ref),
        _text(m.sale_id),
        m.currency,
        _text(m.store_amount),
        _text(m.hq_amount),
        _text(m.delta),
        m.diagnosis.class_,
        _text(m.diagnosis.pattern),
        iso(m.detected_at),
        f"{m.age_s:.0f}",
    ]


def _age(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours / 24:.1f}d" if hours >= 48 else f"{hours:.1f}h"


def _print_table(report: Report) -> None:
    risk = ", ".join(f"{c} {a:f}" for c, a in sorted(report.summary.amount_at_risk.items()))
    print_table(
        ("REPORT", report.report_id),
        [
            ("digest", report.digest_id or "- (checkpoint run)"),
            ("period", f"{iso(report.from_)} .. {iso(report.to)}"),
            ("generated at", iso(report.generated_at)),
            ("checked", str(report.checked)),
            ("matched", str(report.matched)),
            ("mismatches", str(len(report.mismatches))),
            ("at risk", risk or "-"),
        ],
    )
    print()
    print_table(
        TABLE_COLUMNS,
        [
            (
                m.mismatch_id,
                m.kind,
                m.return_id or m.external_ref or "-",
                m.currency,
                _text(m.store_amount) or "-",
                _text(m.hq_amount) or "-",
                _text(m.delta) or "-",
                m.diagnosis.class_,
                m.diagnosis.pattern or "-",
                _age(m.age_s),
            )
            for m in report.mismatches
        ],
    )
