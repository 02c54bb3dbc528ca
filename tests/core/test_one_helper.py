"""One of each helper, and each boundary asking it rather than writing its own: GTINs
through biip, field paths of validation errors, the ledger's status figures, transactions,
and the domain's return-eligibility rule."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from edge.contract.field_paths import field_path
from edge.contract.payloads import AckMsg, Malformed, parse
from edge.contract.timefmt import parse_iso, utcnow
from edge.domain.refund import return_eligibility
from edge.domain.sale import window_open
from edge.domain.views import EligibleLine
from edge.errors import ConfigError
from edge.ledger.status import refunds_today
from edge.scan.gs1 import parse_gtin
from edge.settings import load_settings
from edge.sqlite_tx import immediate
from tests.core.conftest import Gateway, sale


async def test_a_gtin_is_checked_by_biip_at_the_api(gw: Gateway) -> None:
    for i, (gtin, status) in enumerate(
        [
            ("96385074", 201),  # GTIN-8
            ("036000291452", 201),  # GTIN-12
            ("4006381333932", 422),  # check digit off by one
            ("\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff10", 422),  # full-width digits
            (" 12345670", 422),  # biip strips spaces; a product code has none
            ("1234567", 422),  # no GTIN has 7 digits
        ]
    ):
        body = sale(sale_id=f"S-GTIN-{i}")
        body["lines"][0]["gtin"] = gtin
        got, problem, _ = await gw.call("POST", "/v1/sales", body)
        assert got == status, gtin
        if status == 422:
            assert [e["field"] for e in problem["errors"]] == ["lines[0].gtin"]
            assert gtin.strip() not in problem["detail"], "a refused value is never echoed"
    gtin = parse_gtin("96385074")
    assert gtin is not None
    assert gtin.as_gtin_14() == "00000096385074"


def test_every_boundary_names_a_field_the_same_way(tmp_path: Path) -> None:
    assert field_path(("lines", 0, "quantity")) == "lines[0].quantity"
    assert field_path(("devices", "lane 3", "function-after[check()]", "id")) == (
        'devices["lane 3"].id'
    )
    with pytest.raises(ConfigError) as config:
        load_settings(None, data_dir=tmp_path, lan={"port": "eighty"})
    assert [key for key, _ in config.value.problems] == ["lan.port"]
    with pytest.raises(Malformed, match=r"^event_id: "):
        parse(AckMsg, b'{"event_id": "not-a-ulid", "status": "settled"}')


async def test_readyz_and_the_ledger_count_todays_refunds_with_one_query(gw: Gateway) -> None:
    body = sale(sale_id="S-TODAY")
    assert (await gw.call("POST", "/v1/sales", body))[0] == 201
    refund = {"sale_id": "S-TODAY", "lines": [{"line_id": "1", "quantity": 1}]}
    assert (await gw.call("POST", "/v1/refunds", refund, key="today-1"))[0] == 201
    async with gw.http.get(f"{gw.base}/readyz") as r:
        ready = await r.json()
    status = await gw.ledger.status()
    assert ready["refunds_today"] == status.refunds_today == 1
    assert status.refunds_awaiting_hq == 1
    assert ready["outbox"]["last_seq"] == status.outbox.last_seq
    tomorrow = utcnow() + timedelta(days=1)
    assert await gw.ledger.read(lambda conn: refunds_today(conn, tomorrow)) == 0


def test_a_transaction_commits_or_leaves_nothing(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    conn.execute("CREATE TABLE t (x INTEGER)")
    with immediate(conn):
        conn.execute("INSERT INTO t VALUES (1)")

    def insert_then_fail() -> None:
        with immediate(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            raise KeyError(2)

    with pytest.raises(KeyError):
        insert_then_fail()
    assert not conn.in_transaction
    assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    conn.close()


def left(line_id: str, returnable: int, final_sale: bool) -> EligibleLine:
    return EligibleLine(line_id=line_id, returnable_quantity=returnable, final_sale=final_sale)


def test_the_lookup_and_the_refund_share_one_return_rule() -> None:
    sold = parse_iso("2026-11-01T10:00:00.000Z")
    open_lines = [left("1", 2, False), left("2", 1, True)]
    last_day = sold + timedelta(days=30)
    for now in (last_day, last_day + timedelta(microseconds=1)):
        verdict = return_eligibility(sold, open_lines, now=now, window_days=30)
        assert verdict.eligible is window_open(sold, now, 30)
        assert verdict.window_ends_at == last_day
    late = return_eligibility(sold, open_lines, now=last_day + timedelta(days=1), window_days=30)
    assert late.reasons == ("return-window-expired",)
    finals = [left("1", 0, True)]
    assert return_eligibility(sold, finals, now=sold, window_days=30).reasons == ("final-sale",)
    spent = [left("1", 0, False), left("2", 0, True)]
    assert return_eligibility(sold, spent, now=sold, window_days=30).reasons == (
        "nothing-left-to-return",
    )
