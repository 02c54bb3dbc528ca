"""The gateways' reconciliation reports at HQ: stored once, their mismatches flattened into
a fleet-wide view by store, kind, class and pattern, with the amount at risk per currency.

Every instance may receive a report (a plain subscription, or a redelivery); the insert
keyed by `report_id` keeps the first and ignores the rest. A mismatch is one row per
gateway and `mismatch_id`: a later report listing it again refreshes it, and a later
report of the same gateway whose period covers the mismatch's and no longer lists it
resolves it (that report re-checked the same refunds and found them in order).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from edge.contract.recon import Mismatch, Report
from edge.contract.timefmt import iso, utcnow
from edge.hq.tables import insert, recon_mismatches, recon_reports

VIEW_COLUMNS = ("store_id", "kind", "class", "pattern", "currency", "count", "amount_at_risk")


def at_risk(m: Mismatch) -> Decimal:
    """What the mismatch puts at risk: the difference when both sides hold an amount,
    else the amount the one side holds."""
    if m.delta is not None:
        return abs(m.delta)
    held = m.hq_amount if m.hq_amount is not None else m.store_amount
    return abs(held) if held is not None else Decimal(0)


@dataclass(frozen=True)
class Stored:
    new: bool
    mismatches: int = 0
    resolved: int = 0


async def store_report(
    conn: AsyncConnection, report: Report, store_id: str, gateway_id: str, instance: str | None
) -> Stored:
    """Record one report once; `new` is False for a copy already held."""
    if (report.store_id, report.gateway_id) != (store_id, gateway_id):
        raise ValueError("the report names another store or gateway than its topic")
    body = report.model_dump(mode="json", by_alias=True)
    period_from, period_to, seen = iso(report.from_), iso(report.to), iso(report.generated_at)
    stmt = insert(conn, recon_reports).values(
        report_id=report.report_id,
        store_id=store_id,
        gateway_id=gateway_id,
        digest_id=report.digest_id,
        period_from=period_from,
        period_to=period_to,
        generated_at=seen,
        received_at=iso(utcnow()),
        checked=report.checked,
        matched=report.matched,
        summary=json.dumps(body["summary"]),
        body=json.dumps(body),
        received_by=instance,
    )
    done = await conn.execute(
        stmt.on_conflict_do_nothing(index_elements=[recon_reports.c.report_id]).returning(
            recon_reports.c.report_id
        )
    )
    if done.first() is None:
        return Stored(new=False)
    rows = [
        {
            "store_id": store_id,
            "gateway_id": gateway_id,
            "mismatch_id": m.mismatch_id,
            "report_id": report.report_id,
            "kind": m.kind,
            "class": m.diagnosis.class_,
            "pattern": m.diagnosis.pattern,
            "currency": m.currency,
            "delta": None if m.delta is None else format(m.delta, "f"),
            "at_risk": format(at_risk(m), "f"),
            "return_id": m.return_id,
            "external_ref": m.external_ref,
            "period_from": period_from,
            "period_to": period_to,
            "detected_at": iso(m.detected_at),
            "last_seen_at": seen,
            "state": "open",
        }
        for m in {m.mismatch_id: m for m in report.mismatches}.values()
    ]
    if rows:
        ins = insert(conn, recon_mismatches)
        keep = ("store_id", "gateway_id", "mismatch_id", "detected_at")
        await conn.execute(
            ins.on_conflict_do_update(
                index_elements=[
                    recon_mismatches.c.store_id,
                    recon_mismatches.c.gateway_id,
                    recon_mismatches.c.mismatch_id,
                ],
                set_={c: getattr(ins.excluded, c) for c in rows[0] if c not in keep},
                where=recon_mismatches.c.last_seen_at <= ins.excluded.last_seen_at,
            ),
            rows,
        )
    listed = [r["mismatch_id"] for r in rows]
    resolve = (
        update(recon_mismatches)
        .where(
            recon_mismatches.c.store_id == store_id,
            recon_mismatches.c.gateway_id == gateway_id,
            recon_mismatches.c.state == "open",
            recon_mismatches.c.period_from >= period_from,
            recon_mismatches.c.period_to <= period_to,
            recon_mismatches.c.last_seen_at < seen,
            recon_mismatches.c.mismatch_id.not_in(listed),
        )
        .values(state="resolved")
    )
    resolved = (await conn.execute(resolve)).rowcount
    return Stored(new=True, mismatches=len(rows), resolved=int(resolved or 0))


async def recon_view(conn: AsyncConnection) -> dict[str, Any]:
    """The fleet-wide view of open mismatches: totals, and rows by store, kind, class and
    pattern with the count and amount at risk per currency; plus each gateway's latest
    report."""
    query = select(
        recon_mismatches.c.store_id,
        recon_mismatches.c.kind,
        recon_mismatches.c["class"],
        recon_mismatches.c.pattern,
        recon_mismatches.c.currency,
        recon_mismatches.c.at_risk,
    ).where(recon_mismatches.c.state == "open")
    groups: dict[tuple[str, str, str, str | None, str], list[Decimal]] = defaultdict(list)
    for store_id, kind, class_, pattern, currency, risk in (await conn.execute(query)).all():
        groups[(store_id, kind, class_, pattern, currency)].append(Decimal(risk))
    rows = [
        {
            "store_id": k[0],
            "kind": k[1],
            "class": k[2],
            "pattern": k[3],
            "currency": k[4],
            "count": len(v),
            "amount_at_risk": format(sum(v, Decimal(0)), "f"),
        }
        for k, v in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3] or "", kv[0][4])
        )
    ]
    return {
        "generated_at": iso(utcnow()),
        "open_mismatches": sum(r["count"] for r in rows),
        "amount_at_risk": _by(rows, ()),
        "by_store": _by(rows, ("store_id",)),
        "by_kind": _by(rows, ("kind",)),
        "by_class": _by(rows, ("class",)),
        "by_pattern": _by(rows, ("pattern",)),
        "rows": rows,
        "reports": await latest_reports(conn),
    }


def _by(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> Any:
    """Counts and amount at risk per currency, grouped by `keys` (none: the totals)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        name = "/".join(str(r[k]) for k in keys) if keys else "all"
        group = out.setdefault(name, {"count": 0, "amount_at_risk": {}})
        group["count"] += r["count"]
        risk = group["amount_at_risk"]
        risk[r["currency"]] = format(
            Decimal(risk.get(r["currency"], "0")) + Decimal(r["amount_at_risk"]), "f"
        )
    if not keys:
        return out.get("all", {"count": 0, "amount_at_risk": {}})["amount_at_risk"]
    return out


async def latest_reports(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Each gateway's newest report (without its mismatches)."""
    query = select(
        recon_reports.c.store_id,
        recon_reports.c.gateway_id,
        recon_reports.c.report_id,
        recon_reports.c.digest_id,
        recon_reports.c.period_from,
        recon_reports.c.period_to,
        recon_reports.c.generated_at,
        recon_reports.c.checked,
        recon_reports.c.matched,
    ).order_by(recon_reports.c.store_id, recon_reports.c.gateway_id, recon_reports.c.generated_at)
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for r in (await conn.execute(query)).mappings():
        latest[(r["store_id"], r["gateway_id"])] = dict(r)
    return list(latest.values())


def view_csv(view: dict[str, Any]) -> str:
    """The view's rows as CSV (a header line, then one line per group)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=VIEW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in view["rows"]:
        writer.writerow({k: "" if r[k] is None else r[k] for k in VIEW_COLUMNS})
    return out.getvalue()


def view_table(view: dict[str, Any]) -> str:
    """The view's rows as an aligned text table, then the totals."""
    head = list(VIEW_COLUMNS)
    body = [["-" if r[k] is None else str(r[k]) for k in VIEW_COLUMNS] for r in view["rows"]]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=False)]
    lines = [
        "  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
        for row in [head, *body]
    ]
    risk = ", ".join(f"{a} {c}" for c, a in sorted(view["amount_at_risk"].items())) or "none"
    lines.append(f"open mismatches: {view['open_mismatches']}; amount at risk: {risk}")
    return "\n".join(lines) + "\n"
