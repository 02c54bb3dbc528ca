"""The checkpoint, with no digest: a refund HQ has not decided `settle_within` after it was
made is reported `unconfirmed` and alerted; the next due time survives a restart (not run
again early, run at once when overdue); the alert is shown again after a restart without
being sent twice, and clears once HQ settles the refund."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from edge.contract.timefmt import iso, parse_iso, utcnow
from tests.hqlink.harness import Observer
from tests.recon.gateway_rig import (
    WATCHED,
    backdate,
    make_refund,
    mosquitto,
    open_ledger,
    recon_rig,
    settle,
)

SETTINGS = {"settle_within_s": 3600, "checkpoint_interval_s": 3600}


async def test_unconfirmed_refunds_across_restarts(tmp_path: Path) -> None:
    async with open_ledger(tmp_path) as ledger:
        late = await make_refund(ledger, "S-1")
        late_at = await backdate(ledger, late.return_id, timedelta(hours=2))
        recent = await make_refund(ledger, "S-2")  # within settle_within: not yet late
    with mosquitto(tmp_path) as broker:
        async with Observer(broker.port, WATCHED) as hq:
            # first start: no schedule yet, so the checkpoint runs at once
            async with recon_rig(tmp_path, broker.port, hq=hq, **SETTINGS) as rig:
                report = await rig.report_for(None)
                (mismatch,) = report["mismatches"]
                assert mismatch["kind"] == "unconfirmed"
                assert mismatch["return_id"] == late.return_id
                assert mismatch["store_amount"] == "1.00"
                assert mismatch["age_s"] >= 7200
                mid = mismatch["mismatch_id"]
                await hq.wait_for(lambda: [a for a in rig.alerts() if a["subject"] == mid])
                (due,) = await rig.query("SELECT next_due_at FROM recon_checkpoint")
                assert parse_iso(due[0]) > utcnow() + timedelta(minutes=59)
                assert recent.return_id not in report["mismatches"][0].values()
                session = (await rig.health_where(lambda h: h["recon"]))["link"]["connected_since"]

            # restarted before it is due: not run again, the alert listed but not re-sent
            async with recon_rig(tmp_path, broker.port, hq=hq, **SETTINGS) as rig:
                health = await rig.health_where(
                    lambda h: (
                        h["link"]["connected_since"] != session and h["recon"]["next_checkpoint_at"]
                    )
                )
                assert health["recon"]["next_checkpoint_at"] == due[0]
                assert health["recon"]["open_mismatches"] == 1
                assert [a["subject"] for a in health["alerts_open"]] == [mid]
                assert await rig.query("SELECT count(*) FROM recon_reports") == [(1,)]
                assert len(rig.alerts()) == 1
                # overdue while it was down (as if the gateway had been off for hours)
                await rig.ledger.write(
                    lambda conn: conn.execute(
                        "UPDATE recon_checkpoint SET next_due_at = ?",
                        (iso(utcnow() - timedelta(minutes=5)),),
                    )
                )

            # restarted overdue: runs at once; the same mismatch, still one alert
            async with recon_rig(tmp_path, broker.port, hq=hq, **SETTINGS) as rig:
                second = await rig.report_for(None, seen=1)
                assert [m["mismatch_id"] for m in second["mismatches"]] == [mid]
                # each run covers from where the last ended, or the oldest refund still pending
                assert second["from"] == report["from"] == iso(late_at)
                assert second["to"] >= report["to"]
                assert len(rig.alerts()) == 1

                # HQ settles it: the next run (on demand) resolves it and clears the alert
                await settle(rig.ledger, late.return_id)
                report_id = await rig.link.run_checkpoint()
                third = await rig.report_for(None, seen=2)
                assert third["report_id"] == report_id  # each report is sent once
                assert third["mismatches"] == []
                assert third["from"] == second["to"]
                await hq.wait_for(lambda: [a for a in rig.alerts("cleared") if a["subject"] == mid])
                assert await rig.query(
                    "SELECT state FROM recon_mismatches WHERE mismatch_id = ?", mid
                ) == [("resolved",)]
                health = await rig.health_where(lambda h: h["recon"]["open_mismatches"] == 0)
                assert [a for a in health["alerts_open"] if a["alert"] == "recon-mismatch"] == []


async def test_a_report_made_while_the_broker_is_away_is_sent_on_reconnect(
    tmp_path: Path,
) -> None:
    with mosquitto(tmp_path) as broker:
        async with recon_rig(tmp_path, broker.port, **SETTINGS) as rig:
            await rig.report_for(None)  # the first run, at start
            broker.stop()
            await rig.link.client.wait_disconnected()
            report_id = await rig.link.run_checkpoint()
            assert await rig.query(
                "SELECT published_at FROM recon_reports WHERE report_id = ?", report_id
            ) == [(None,)]
            broker.start()
            # a fresh watcher: health messages (every 0.2 s) make it check the ledger again
            async with Observer(broker.port, WATCHED) as hq:
                await rig.link.client.wait_connected()
                await hq.wait_for(
                    lambda: rig.now_in_db(
                        "SELECT 1 FROM recon_reports WHERE report_id = ?"
                        " AND published_at IS NOT NULL",
                        report_id,
                    )
                )
