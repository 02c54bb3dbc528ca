"""Every payload model reads the contract's examples and writes them back unchanged; the
reconciliation models refuse what the contract does not allow, naming the field."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from edge.contract.commands import CmdResultMsg, PingResult
from edge.contract.health import BirthMsg, HealthMsg, WillMsg
from edge.contract.payloads import (
    AlertMsg,
    LookupMsg,
    LookupReplyMsg,
    Malformed,
    StateMsg,
    dumps,
    encode,
    parse,
)
from edge.contract.recon import (
    DIGEST_REFUNDS_MAX,
    INTEGRATION_PATTERNS,
    LINES_MAX,
    MISMATCH_KINDS,
    PROCESS_PATTERNS,
    Digest,
    Report,
)
from edge.contract.topics import GatewayTopics, parse_gateway_topic
from tests.contract_models import examples as ex

ROUND_TRIPS: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (BirthMsg, ex.BIRTH),
    (WillMsg, ex.WILL),
    (AlertMsg, ex.ALERT),
    (HealthMsg, ex.HEALTH),
    (CmdResultMsg, ex.CMD_RESULT_OK),
    (CmdResultMsg, ex.CMD_RESULT_ERROR),
    (LookupMsg, ex.LOOKUP),
    (LookupReplyMsg, ex.LOOKUP_REPLY_NOT_FOUND),
    (Digest, ex.DIGEST),
    (Report, ex.REPORT),
    (Report, ex.CHECKPOINT_REPORT),
]


@pytest.mark.parametrize(
    ("model", "example"),
    ROUND_TRIPS,
    ids=[f"{m.__name__}-{n}" for n, (m, _) in enumerate(ROUND_TRIPS)],
)
def test_each_model_round_trips_the_contract_example(
    model: type[BaseModel], example: dict[str, Any]
) -> None:
    wire = dumps(example)
    assert encode(parse(model, wire)) == wire  # same keys, same order, same text


def test_amounts_are_decimals_in_code_and_text_on_the_wire() -> None:
    digest = parse(Digest, dumps(ex.DIGEST))
    entry = digest.refunds[0]
    assert entry.total == Decimal("17.09")
    assert isinstance(entry.tenders[0].amount, Decimal)
    assert digest.from_ == datetime(2026, 11, 22, tzinfo=UTC)
    hundred = entry.model_copy(update={"total": Decimal("1E+2")})
    assert hundred.model_dump(mode="json")["total"] == "100"  # fixed point, never "1E+2"
    report = parse(Report, dumps(ex.REPORT))
    assert report.summary.amount_at_risk == {"USD": Decimal("25.01")}
    assert report.mismatches[0].diagnosis.class_ == "integration"


def test_keyword_fields_are_set_by_name_and_written_by_their_wire_name() -> None:
    digest = Digest(
        digest_id="D-1",
        from_=datetime(2026, 11, 22, tzinfo=UTC),
        to=datetime(2026, 11, 23, tzinfo=UTC),
        generated_at=datetime(2026, 11, 23, 1, tzinfo=UTC),
        refunds=[],
    )
    data = digest.model_dump(mode="json")
    assert list(data) == ["digest_id", "from", "to", "generated_at", "refunds"]
    assert data["from"] == "2026-11-22T00:00:00.000Z"
    assert parse(Digest, encode(digest)) == digest


def test_unknown_fields_are_ignored_so_the_contract_can_grow() -> None:
    grown = {**ex.DIGEST, "shard": 3, "refunds": [{**ex.digest_entry(), "channel": "web"}]}
    digest = parse(Digest, dumps(grown))
    assert "shard" not in digest.model_dump(mode="json")
    assert len(digest.refunds) == 1


def refused(model: type[BaseModel], payload: dict[str, Any]) -> str:
    with pytest.raises(Malformed) as caught:
        parse(model, dumps(payload))
    return str(caught.value)


def with_entry(**changes: Any) -> dict[str, Any]:
    return {**ex.DIGEST, "refunds": [ex.digest_entry(**changes)]}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"total": 17.09}, "refunds[0].total"),  # a float: never an amount
        ({"total": 17}, "refunds[0].total"),  # a JSON integer neither
        ({"tax": "1e2"}, "refunds[0].tax"),
        ({"tax": "NaN"}, "refunds[0].tax"),
        ({"tax": " 1.60"}, "refunds[0].tax"),
        ({"tax": "1" * 40}, "refunds[0].tax"),
        ({"tenders": [{"type": "card", "amount": 17.09}]}, "refunds[0].tenders[0].amount"),
        ({"kind": "refund"}, "refunds[0].kind"),
        ({"source": "pos"}, "refunds[0].source"),
        ({"status": "accepted"}, "refunds[0].status"),
        ({"currency": "usd"}, "refunds[0].currency"),
        ({"created_at": "2026-11-22T10:40:00"}, "refunds[0].created_at"),  # no offset
        (
            {"lines": [{**ex.digest_entry()["lines"][0], "quantity": "1"}]},
            "refunds[0].lines[0].quantity",
        ),
        ({"lines": [ex.digest_entry()["lines"][0]] * (LINES_MAX + 1)}, "refunds[0].lines"),
    ],
)
def test_a_digest_entry_out_of_contract_is_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    assert refused(Digest, with_entry(**changes)).startswith(f"{field}: ")


@pytest.mark.parametrize("key", ["external_ref", "return_id", "tenders", "settled_at", "kind"])
def test_a_digest_entry_missing_a_field_is_refused_naming_it(key: str) -> None:
    entry = ex.digest_entry()
    del entry[key]  # null is allowed where the contract says so; absent never
    assert refused(Digest, {**ex.DIGEST, "refunds": [entry]}) == f"refunds[0].{key}: Field required"


def test_a_digest_with_too_many_entries_is_refused() -> None:
    many = {**ex.DIGEST, "refunds": [ex.digest_entry()] * (DIGEST_REFUNDS_MAX + 1)}
    assert refused(Digest, many).startswith("refunds: List should have at most")
    assert len(parse(Digest, dumps({**many, "refunds": many["refunds"][:-1]})).refunds) == (
        DIGEST_REFUNDS_MAX
    )


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    backwards = {**ex.DIGEST, "from": ex.DIGEST["to"], "to": ex.DIGEST["from"]}
    assert "`to` must be after `from`" in refused(Digest, backwards)
    assert "`to` must be after `from`" in refused(Report, {**ex.REPORT, "to": ex.REPORT["from"]})


def with_mismatch(**changes: Any) -> dict[str, Any]:
    return {**ex.REPORT, "mismatches": [ex.mismatch(**changes)]}


def diagnosis(**changes: Any) -> dict[str, Any]:
    found = copy.deepcopy(ex.mismatch()["diagnosis"])
    found.update(changes)
    return found


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (with_mismatch(kind="amount_mismatch"), "mismatches[0].kind"),
        (with_mismatch(delta=0.01), "mismatches[0].delta"),
        (
            with_mismatch(diagnosis=diagnosis(**{"class": "people"})),
            "mismatches[0].diagnosis.class",
        ),
        (with_mismatch(diagnosis=diagnosis(pattern="typo")), "mismatches[0].diagnosis.pattern"),
        (
            with_mismatch(diagnosis=diagnosis(answers={**diagnosis()["answers"], "delayed": "no"})),
            "mismatches[0].diagnosis.answers.delayed",
        ),
        (
            with_mismatch(diagnosis=diagnosis(answers={**diagnosis()["answers"], "repeats": 1})),
            "mismatches[0].diagnosis.answers.repeats",
        ),
        (
            {**ex.REPORT, "summary": {**ex.REPORT["summary"], "by_kind": {"other": 1}}},
            'summary.by_kind.other["[key]"]',  # the key, not its value, is wrong
        ),
        (
            {**ex.REPORT, "summary": {**ex.REPORT["summary"], "amount_at_risk": {"USD": 0.01}}},
            "summary.amount_at_risk.USD",
        ),
        ({**ex.REPORT, "checked": -1}, "checked"),
    ],
)
def test_a_report_out_of_contract_is_refused_naming_the_field(
    payload: dict[str, Any], field: str
) -> None:
    assert refused(Report, payload).startswith(f"{field}: ")


def test_every_slug_of_the_contract_is_accepted() -> None:
    assert len(MISMATCH_KINDS) == 8
    assert len(INTEGRATION_PATTERNS) + len(PROCESS_PATTERNS) == 10
    pairs = [("integration", p) for p in INTEGRATION_PATTERNS] + [
        ("process", p) for p in PROCESS_PATTERNS
    ]
    payload = {
        **ex.REPORT,
        "mismatches": [
            ex.mismatch(kind=kind, diagnosis=diagnosis(**{"class": cls, "pattern": pattern}))
            for kind, (cls, pattern) in zip(MISMATCH_KINDS * 2, pairs, strict=False)
        ],
    }
    report = parse(Report, dumps(payload))
    assert {m.kind for m in report.mismatches} == set(MISMATCH_KINDS)
    assert {m.diagnosis.pattern for m in report.mismatches} == {p for _, p in pairs}


def test_the_state_reader_reads_what_birth_and_will_write() -> None:
    """HQ's fleet view reads `state` with the lenient StateMsg: it must read both."""
    birth = parse(StateMsg, encode(parse(BirthMsg, dumps(ex.BIRTH))))
    will = parse(StateMsg, encode(WillMsg(bd_seq=7)))
    assert (birth.state, birth.bd_seq, birth.version) == ("online", 7, "0.1.0")
    assert (will.state, will.bd_seq) == ("offline", 7)


def test_a_failed_command_sends_no_result_key_and_a_good_one_no_error_key() -> None:
    at = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    ok = CmdResultMsg(
        request_id="p1",
        command="ping",
        ok=True,
        result=PingResult(pong=True, version="0.1.0").model_dump(mode="json"),
        at=at,
    )
    failed = CmdResultMsg(request_id="r1", command="nope", ok=False, error="unknown", at=at)
    assert list(json.loads(encode(ok))) == ["request_id", "command", "ok", "result", "at"]
    assert list(json.loads(encode(failed))) == ["request_id", "command", "ok", "error", "at"]


def test_reconciliation_topics() -> None:
    topics = GatewayTopics("retail/v1", "0042", "gw-01")
    assert topics.recon_digest == "retail/v1/0042/gw-01/recon/digest"
    assert topics.recon_report == "retail/v1/0042/gw-01/recon/report"
    addr = parse_gateway_topic("retail/v1", topics.recon_report)
    assert addr is not None
    assert (addr.store_id, addr.gateway_id, addr.leaf) == ("0042", "gw-01", "recon/report")
