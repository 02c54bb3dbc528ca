"""Digests the gateway will not apply, over a real broker: each is logged and counted by
reason (health `errors`, /metrics) and leaves the ledger exactly as it was; a digest seen
before is answered with the report it got then, and nothing is applied twice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client import generate_latest

from edge.api.metrics import ApiMetrics
from edge.contract.payloads import dumps
from edge.contract.timefmt import iso, utcnow
from tests.recon.gateway_rig import digest, entry, make_refund, mosquitto, recon_rig

TABLES = ("recon_mismatches", "recon_reports", "recon_digests", "audit_log")


async def test_bad_digests_are_refused_counted_and_write_nothing(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        async with recon_rig(
            tmp_path, broker.port, digest_max_entries=2, digest_max_bytes=4096
        ) as rig:
            refund = await make_refund(rig.ledger, "S-1")
            await rig.report_for(None)  # the first checkpoint, run at start
            before = {t: await rig.query(f"SELECT * FROM {t}") for t in TABLES}
            good = entry(refund, 0)
            other_store = entry(refund, 1, return_id="R-9999-01JD3X5Q7W8ZK3M9T2B4C6D8F0")
            old = iso(utcnow() - timedelta(days=3))
            sent = {
                "malformed": [
                    b"not json",
                    b"[]",
                    dumps({"digest_id": "D-x", "from": iso(utcnow())}),  # keys missing
                    dumps(digest("D-num", [{**good, "total": 1.0}])),  # money as a number
                    dumps(digest("D-back", [], to=iso(utcnow() - timedelta(days=1)))),
                ],
                "too-large": [dumps(digest("D-big", [good], pad="x" * 5000))],
                "too-many-entries": [
                    dumps(digest("D-many", [good, entry(refund, 1), entry(refund, 2)]))
                ],
                "other-store": [dumps(digest("D-other", [good, other_store]))],
                "entry-outside-period": [
                    dumps(digest("D-out", [entry(refund, 0, created_at=old)]))
                ],
                "period-too-long": [
                    dumps(digest("D-long", [good], **{"from": iso(utcnow() - timedelta(days=400))}))
                ],
                "bad-currency": [dumps(digest("D-xau", [entry(refund, 0, currency="XAU")]))],
            }
            for payloads in sent.values():
                for payload in payloads:
                    rig.send(payload)
            total = sum(len(p) for p in sent.values())
            health = await rig.health_where(
                lambda h: h["errors"].get("recon_digest_rejected", 0) >= total
            )
            assert health["errors"]["recon_digest_rejected"] == total
            assert dict(rig.link.recon.rejected) == {k: len(v) for k, v in sent.items()}
            for table, rows in before.items():
                assert await rig.query(f"SELECT * FROM {table}") == rows, table
            assert [r for r in rig.reports() if r["digest_id"] is not None] == []

            # a good digest, then the same one again: one report, sent twice, applied once
            body = dumps(digest("D-1", [entry(refund, 0, total="9.99")]))
            rig.send(body)
            first = await rig.report_for("D-1")
            rig.send(body)
            again = await rig.report_for("D-1", seen=1)
            assert again == first
            assert await rig.query("SELECT count(*) FROM recon_digests") == [(1,)]
            assert await rig.query(
                "SELECT count(*) FROM recon_reports WHERE digest_id = 'D-1'"
            ) == [(1,)]
            assert rig.link.errors["recon_digest_replayed"] == 1
            # the same id with another body is refused
            rig.send(dumps(digest("D-1", [])))
            await rig.health_where(
                lambda h: h["errors"].get("recon_digest_rejected", 0) == total + 1
            )
            assert rig.link.recon.rejected["digest-id-reused"] == 1
            assert await rig.query("SELECT count(*) FROM recon_digests") == [(1,)]

            metrics = ApiMetrics(collectors=[rig.link.recon.metrics])
            text = generate_latest(metrics.registry).decode()
            assert 'edge_recon_digests_rejected_total{reason="malformed"} 5.0' in text
            assert 'edge_recon_digests_rejected_total{reason="digest-id-reused"} 1.0' in text
            assert 'edge_recon_open_mismatches{kind="amount-mismatch"} 1.0' in text
            assert 'edge_recon_open_mismatches{kind="duplicate"} 0.0' in text
