"""The JSON Schemas in docs/schemas/ are what the models say (regenerate them with
scripts/contract-schemas), and a client that validates with them alone accepts the
contract's examples and refuses money sent as a number."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edge.contract.health import HealthMsg
from edge.contract.schemas import SCHEMAS, schema_files
from tests.contract_models import examples as ex
from tests.core.daemon import ROOT

COMMITTED = ROOT / "docs" / "schemas"


def test_every_model_exports_its_schema_by_wire_names() -> None:
    for stem, model in SCHEMAS.items():
        schema = model.model_json_schema(by_alias=True)
        assert schema["type"] == "object", stem
        jsonschema.Draft202012Validator.check_schema(schema)
    digest = SCHEMAS["recon-digest"].model_json_schema(by_alias=True)
    assert list(digest["properties"])[:3] == ["digest_id", "from", "to"]
    assert digest["$defs"]["DigestEntry"]["properties"]["total"]["type"] == "string"


def test_the_committed_schemas_are_up_to_date(tmp_path: Path) -> None:
    script = subprocess.run(
        [str(ROOT / "scripts" / "contract-schemas"), str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert script.returncode == 0, script.stderr
    written = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.json")}
    assert written == schema_files()
    committed = {p.name: p.read_text(encoding="utf-8") for p in COMMITTED.glob("*.json")}
    assert committed == written, "docs/schemas is stale: run scripts/contract-schemas"


def validator(stem: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((COMMITTED / f"{stem}.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(
    ("stem", "example"),
    [
        ("state-birth", ex.BIRTH),
        ("state-will", ex.WILL),
        ("health", ex.HEALTH),
        ("alerts", ex.ALERT),
        ("cmd-result", ex.CMD_RESULT_OK),
        ("cmd-result", ex.CMD_RESULT_ERROR),
        ("lookup", ex.LOOKUP),
        ("lookup-reply", ex.LOOKUP_REPLY_NOT_FOUND),
        ("recon-digest", ex.DIGEST),
        ("recon-report", ex.REPORT),
        ("recon-report", ex.CHECKPOINT_REPORT),
    ],
)
def test_the_schemas_accept_the_contract_examples(stem: str, example: dict[str, Any]) -> None:
    assert list(validator(stem).iter_errors(example)) == []


def test_the_digest_schema_refuses_money_as_a_number() -> None:
    bad = {**ex.DIGEST, "refunds": [ex.digest_entry(total=17.09)]}
    errors = list(validator("recon-digest").iter_errors(bad))
    assert [list(e.absolute_path) for e in errors] == [["refunds", 0, "total"]]


def test_the_health_example_in_the_docs_is_a_health_message() -> None:
    text = (ROOT / "docs" / "mqtt.md").read_text(encoding="utf-8")
    block = text.split("### health", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    health = HealthMsg.model_validate_json(block)
    assert health.outbox.last_seq == 1234
    assert list(validator("health").iter_errors(json.loads(block))) == []
