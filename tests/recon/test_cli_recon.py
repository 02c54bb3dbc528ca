"""`edge-gateway recon run|report|accept` on a real ledger file: each format parses back,
an acceptance is audited with who and why, and every failure is one line and a non-zero
exit."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from edge.cli.main import main
from edge.contract.timefmt import iso, utcnow
from tests.core.conftest import make_settings, sale
from tests.core.daemon import cli, env_for, free_port
from tests.recon.lan import lan_gateway


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The gateway's data directory, for in-process `main()` calls and subprocesses."""
    env = env_for(tmp_path, free_port())
    for key in [k for k in os.environ if k.startswith("EDGE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("EDGE_"):
            monkeypatch.setenv(key, value)
    return env


async def _overdue_refund(data_dir: Path) -> str:
    """A sale and a refund made over the LAN API, which HQ then left unanswered for two
    days (past the default `settle_within`)."""
    async with lan_gateway(make_settings(data_dir)) as gw:
        body = sale()
        status, _, _ = await gw.call("POST", "/v1/sales", body)
        assert status == 201
        refund = {"sale_id": body["sale_id"], "lines": [{"line_id": "1", "quantity": 1}]}
        status, made, _ = await gw.call("POST", "/v1/refunds", refund, key="cli-1")
        assert status == 201, made
        return_id = str(made["return_id"])
        late = iso(utcnow() - timedelta(days=2))

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE returns SET created_at = ?, updated_at = ? WHERE return_id = ?",
                (late, late, return_id),
            )

        await gw.ledger.write(job)
        return return_id


@pytest.fixture
def overdue(tmp_path: Path, data_env: dict[str, str]) -> str:
    return asyncio.run(_overdue_refund(tmp_path))


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(text: str) -> list[dict[str, str]]:
    """The mismatch table (the block after the first blank line) as dicts by header."""
    block = text.split("\n\n", 1)[1].strip().splitlines()
    header = block[0].split()
    return [dict(zip(header, line.split(), strict=True)) for line in block[1:]]


def test_run_then_report_in_every_format(overdue: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "recon", "run", "--format", "json")
    assert (code, err) == (0, "")
    report: dict[str, Any] = json.loads(out)
    assert out.startswith('{\n  "report_id"')  # pretty
    assert report["digest_id"] is None
    (mismatch,) = report["mismatches"]
    assert (mismatch["kind"], mismatch["return_id"]) == ("unconfirmed", overdue)

    code, out, _ = run_main(capsys, "recon", "report", "--format", "csv")
    assert code == 0
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["report_id"] == report["report_id"]
    assert row["mismatch_id"] == mismatch["mismatch_id"]
    assert (row["kind"], row["return_id"], row["currency"]) == ("unconfirmed", overdue, "USD")
    assert (row["store_amount"], row["hq_amount"], row["delta"]) == ("17.09", "", "")
    assert row["class"] == mismatch["diagnosis"]["class"]

    code, out, _ = run_main(capsys, "recon", "report", report["report_id"])
    assert code == 0
    first = out.splitlines()[0].split()
    assert first == ["REPORT", report["report_id"]]
    assert "digest        - (checkpoint run)" in out
    assert "at risk       USD 17.09" in out
    (line,) = table_rows(out)
    assert line["MISMATCH"] == mismatch["mismatch_id"]
    assert (line["KIND"], line["REFUND"], line["STORE"], line["HQ"]) == (
        "unconfirmed",
        overdue,
        "17.09",
        "-",
    )
    assert line["AGE"] == "2.0d"


def test_accept_is_audited_and_the_next_run_leaves_it_out(
    overdue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_main(capsys, "recon", "run", "--format", "json")
    mismatch_id = json.loads(out)["mismatches"][0]["mismatch_id"]
    code, out, err = run_main(
        capsys, "recon", "accept", mismatch_id, "--reason", "HQ wrote it off", "--by", "ann"
    )
    assert (code, err) == (0, "")
    assert out == f"accepted {mismatch_id} (unconfirmed) by ann\n"
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    actor, detail = db.execute(
        "SELECT actor, detail FROM audit_log WHERE action = 'recon.mismatch_accepted'"
        " AND subject = ?",
        (mismatch_id,),
    ).fetchone()
    assert (actor, json.loads(detail)["reason"]) == ("ann", "HQ wrote it off")
    code, out, _ = run_main(capsys, "recon", "run", "--format", "csv")
    assert code == 0
    assert out.splitlines()[1:] == []  # the header row alone: nothing left to report
    assert out.splitlines()[0].startswith("report_id,mismatch_id,kind")
    assert main(["audit", "verify"]) == 0


def test_accept_refusals_are_one_line(
    overdue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_main(capsys, "recon", "run", "--format", "json")
    mismatch_id = json.loads(out)["mismatches"][0]["mismatch_id"]
    pan = "4111 1111 1111 1111"
    for args, code, words in [
        ((mismatch_id, "--reason", f"card {pan}"), 2, "--reason looks like a card number"),
        ((mismatch_id, "--reason", "ok", "--by", pan), 2, "--by looks like a card number"),
        ((mismatch_id, "--reason", " "), 2, "reason"),
        (("M-unknown", "--reason", "ok"), 1, "no mismatch M-unknown"),
    ]:
        got, out, err = run_main(capsys, "recon", "accept", *args)
        assert (got, out) == (code, ""), err
        assert err.count("\n") == 1, err
        assert words in err
        assert pan not in err
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert db.execute("SELECT state FROM recon_mismatches").fetchall() == [("open",)]


def test_report_without_reports_or_of_an_unknown_id_fails(
    data_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(capsys, "recon", "report")
    assert (code, out) == (1, "")
    assert err == "no reconciliation report yet: run `edge-gateway recon run`\n"
    code, out, err = run_main(capsys, "recon", "report", "RP-nope", "--format", "json")
    assert (code, out, err) == (1, "", "no reconciliation report RP-nope\n")


def test_the_installed_command_fails_in_one_line(data_env: dict[str, str]) -> None:
    done = cli(data_env, "recon", "report", "RP-nope")
    assert done.returncode == 1
    assert done.stderr == "no reconciliation report RP-nope\n"
    assert "Traceback" not in done.stderr
    done = cli(data_env, "recon", "run", "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "report_id,mismatch_id,kind,return_id,external_ref,sale_id,currency,store_amount,"
        "hq_amount,delta,class,pattern,detected_at,age_s"
    ]
