"""A digest from HQ, over a real broker, against a real ledger: the gateway compares,
stores what differs, answers on `recon/report`, and raises one alert per mismatch, cleared
when it resolves or is accepted and raised again when it comes back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from edge.contract.payloads import parse
from edge.contract.recon import Report
from edge.contract.timefmt import utcnow
from edge.ledger.audit import verify_audit
from edge.ledger.db import open_sync
from tests.recon.gateway_rig import (
    digest,
    entry,
    hq_only_entry,
    make_refund,
    mosquitto,
    recon_rig,
)


async def test_a_digest_equal_to_the_ledger_gets_a_report_without_mismatches(
    tmp_path: Path,
) -> None:
    with mosquitto(tmp_path) as broker:
        async with recon_rig(tmp_path, broker.port) as rig:
            refunds = [await make_refund(rig.ledger, f"S-{n}") for n in range(3)]
            rig.send(digest("D-equal", [entry(r, n) for n, r in enumerate(refunds)]))
            report = await rig.report_for("D-equal")
            parse(Report, Report.model_validate(report).model_dump_json(by_alias=True).encode())
            assert report["mismatches"] == []
            assert report["checked"] == 3
            assert report["matched"] == 3
            assert report["store_id"] == "0042"
            assert report["summary"] == {"by_kind": {}, "by_class": {}, "amount_at_risk": {}}
            stored = await rig.query(
                "SELECT report_id, digest_id FROM recon_reports WHERE digest_id IS NOT NULL"
            )
            assert stored == [(report["report_id"], "D-equal")]
            # marked as handed to the broker
            await rig.hq.wait_for(
                lambda: rig.now_in_db(
                    "SELECT 1 FROM recon_reports WHERE report_id = ? AND published_at IS NOT NULL",
                    report["report_id"],
                )
            )
            assert await rig.query("SELECT * FROM recon_mismatches") == []
            assert rig.alerts() == []


async def test_planted_differences_are_stored_reported_and_alerted_once_each(
    tmp_path: Path,
) -> None:
    with mosquitto(tmp_path) as broker:
        async with recon_rig(tmp_path, broker.port, alert_amount={"USD": "0.50"}) as rig:
            r0, r1, r2 = [await make_refund(rig.ledger, f"S-{n}") for n in range(3)]
            cs = hq_only_entry("CS-7781", "25.00", utcnow() - timedelta(minutes=5))
            planted = [
                entry(r0, 0, total="1.01", tenders=[{"type": "cash", "amount": "1.01"}]),
                # r1 is not listed: missing at HQ
                entry(r2, 2),
                cs,
            ]
            rig.send(digest("D-1", planted))
            report = await rig.report_for("D-1")
            kinds = {m["kind"]: m for m in report["mismatches"]}
            assert set(kinds) == {"amount-mismatch", "missing-at-hq", "unknown-to-store"}
            assert kinds["amount-mismatch"]["return_id"] == r0.return_id
            assert kinds["amount-mismatch"]["delta"] == "0.01"
            assert kinds["missing-at-hq"]["return_id"] == r1.return_id
            assert kinds["unknown-to-store"]["external_ref"] == "CS-7781"
            assert report["summary"]["by_kind"] == {
                "amount-mismatch": 1,
                "missing-at-hq": 1,
                "unknown-to-store": 1,
            }
            assert report["summary"]["amount_at_risk"] == {"USD": "26.01"}
            assert report["matched"] == 1
            rows = await rig.query(
                "SELECT mismatch_id, kind, state, delta, alert_raised, last_report_id"
                " FROM recon_mismatches ORDER BY kind"
            )
            assert [(r[1], r[2]) for r in rows] == [
                ("amount-mismatch", "open"),
                ("missing-at-hq", "open"),
                ("unknown-to-store", "open"),
            ]
            assert {r[0] for r in rows} == {m["mismatch_id"] for m in report["mismatches"]}
            assert all(r[5] == report["report_id"] for r in rows)
            # above the 0.50 alert amount: the missing refund and HQ's own; not the 0.01
            alerted = {r[0] for r in rows if r[4]}
            assert alerted == {
                kinds["missing-at-hq"]["mismatch_id"],
                kinds["unknown-to-store"]["mismatch_id"],
            }
            await rig.hq.wait_for(lambda: len(rig.alerts()) == 2)
            assert {a["subject"] for a in rig.alerts()} == alerted

            # the same differences again (a new digest): the same mismatches, no new alert
            rig.send(digest("D-2", planted))
            again = await rig.report_for("D-2")
            assert {m["mismatch_id"] for m in again["mismatches"]} == {r[0] for r in rows}
            health = await rig.health_where(lambda h: h["recon"]["open_mismatches"] == 3)
            assert health["recon"]["by_kind"]["missing-at-hq"] == 1
            assert len(rig.alerts()) == 2
            assert {
                a["subject"] for a in health["alerts_open"] if a["alert"] == "recon-mismatch"
            } == alerted

            # HQ now holds r1: that mismatch resolves and its alert clears
            missing = kinds["missing-at-hq"]["mismatch_id"]
            rig.send(digest("D-3", [*planted, entry(r1, 1)]))
            fixed = await rig.report_for("D-3")
            assert missing not in {m["mismatch_id"] for m in fixed["mismatches"]}
            await rig.hq.wait_for(
                lambda: [a for a in rig.alerts("cleared") if a["subject"] == missing]
            )
            assert await rig.query(
                "SELECT state, resolved_at IS NOT NULL FROM recon_mismatches WHERE mismatch_id = ?",
                missing,
            ) == [("resolved", 1)]

            # and it comes back: reopened (same id), counted, alerted again
            rig.send(digest("D-4", planted))
            back = await rig.report_for("D-4")
            assert missing in {m["mismatch_id"] for m in back["mismatches"]}
            assert await rig.query(
                "SELECT state, reopened FROM recon_mismatches WHERE mismatch_id = ?", missing
            ) == [("open", 1)]
            await rig.hq.wait_for(
                lambda: len([a for a in rig.alerts() if a["subject"] == missing]) == 2
            )
            assert rig.link.errors["recon_mismatches_reopened"] == 1
            health = await rig.health_where(lambda h: h["recon"]["reopened_total"] == 1)
            assert health["errors"]["recon_mismatches_reopened"] == 1


async def test_accepting_a_mismatch_is_audited_and_clears_its_alert(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        async with recon_rig(tmp_path, broker.port) as rig:
            refund = await make_refund(rig.ledger, "S-1")
            off = [entry(refund, 0, total="1.02", tenders=[{"type": "cash", "amount": "1.02"}])]
            rig.send(digest("D-1", off))
            report = await rig.report_for("D-1")
            (mismatch,) = report["mismatches"]
            mid = mismatch["mismatch_id"]
            await rig.hq.wait_for(lambda: [a for a in rig.alerts() if a["subject"] == mid])

            row = await rig.link.recon.accept(mid, "ops-lead", "legacy ERP rounds cash refunds")
            assert row.state == "accepted"
            assert row.accepted_by == "ops-lead"
            await rig.hq.wait_for(lambda: [a for a in rig.alerts("cleared") if a["subject"] == mid])
            audit = await rig.query(
                "SELECT actor, action, subject, detail FROM audit_log"
                " WHERE action = 'recon.mismatch_accepted'"
            )
            assert [(a[0], a[1], a[2]) for a in audit] == [
                ("ops-lead", "recon.mismatch_accepted", mid)
            ]
            assert "legacy ERP rounds cash refunds" in audit[0][3]
            conn = open_sync(rig.ledger.path, read_only=True)
            try:
                assert verify_audit(conn)[1] == []
            finally:
                conn.close()

            # the same difference again stays accepted: not reported, not alerted
            rig.send(digest("D-2", off))
            same = await rig.report_for("D-2")
            assert same["mismatches"] == []
            assert len([a for a in rig.alerts() if a["subject"] == mid]) == 1
            # a different difference is not what was accepted: reopened and alerted
            worse = [entry(refund, 0, total="1.50", tenders=[{"type": "cash", "amount": "1.50"}])]
            rig.send(digest("D-3", worse))
            reopened = await rig.report_for("D-3")
            assert [m["mismatch_id"] for m in reopened["mismatches"]] == [mid]
            assert reopened["mismatches"][0]["delta"] == "0.50"
            await rig.hq.wait_for(
                lambda: len([a for a in rig.alerts() if a["subject"] == mid]) == 2
            )
            assert await rig.query(
                "SELECT state, reopened FROM recon_mismatches WHERE mismatch_id = ?", mid
            ) == [("open", 1)]
