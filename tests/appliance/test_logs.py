"""Logs for journald: JSON lines with request ids and Return IDs, and never a secret.

The daemon runs as systemd runs it (stderr not a terminal) at DEBUG, through a whole day at
the register: a client, a token, a card sale, a refund refused for approval, a wrong PIN,
the manager's PIN, a request carrying a card number. Its log is then read line by line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge import logs
from edge.errors import ConfigError
from edge.settings import load_settings
from tests.core.conftest import sale
from tests.core.daemon import ROOT, add_client, cli, env_for, free_port, launch
from tests.log_scan import SecretScanner, known_secrets, source_files

MANAGER_PIN = "593817"
WRONG_PIN = {"manager_id": "m-17", "pin": "284651"}
BADGE = "04C0FFEE123456"
CARD = "4111 1111 1111 1111"
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
KEYS = {"ts", "level", "logger", "msg"}


def record(msg: str, *args: object, level: int = logging.INFO, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("edge.test", level, __file__, 1, msg, args or None, None)
    rec.__dict__.update(extra)
    return rec


# ---- the format ----------------------------------------------------------------------


def test_a_json_line_has_the_documented_keys_and_the_request_context() -> None:
    formatter = logs.JsonFormatter()
    with logs.request_scope("req-1"):
        logs.bind_return_id("R-0001-01JABCDEFGHJKMNPQRSTVWXYZ0")
        inside = json.loads(formatter.format(record("refund %s", "done", lane="lane-3")))
    outside = json.loads(formatter.format(record("idle", level=logging.DEBUG)))
    assert list(inside) == ["ts", "level", "logger", "msg", "request_id", "return_id", "lane"]
    assert TS.fullmatch(inside["ts"]), inside["ts"]
    assert inside["msg"] == "refund done"
    assert (inside["request_id"], inside["return_id"]) == (
        "req-1",
        "R-0001-01JABCDEFGHJKMNPQRSTVWXYZ0",
    )
    assert outside == {k: outside[k] for k in KEYS}
    assert outside["level"] == "DEBUG"


def test_an_exception_and_a_clashing_extra_stay_in_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        rec = logging.LogRecord(
            "edge.x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    rec.__dict__["level"] = "mine"
    line = logs.JsonFormatter().format(rec)
    assert "\n" not in line
    out = json.loads(line)
    assert out["exc"].startswith("Traceback")
    assert "ValueError: bad\nthing" in out["exc"]
    assert (out["level"], out["extra_level"]) == ("ERROR", "mine")


def test_text_names_the_request_and_journald_reads_the_priority() -> None:
    with logs.request_scope("req-9"):
        text = logs.TextFormatter().format(record("sale recorded"))
        journal = logs.JsonFormatter(journal_priority=True).format(
            record("disk low", level=logging.WARNING)
        )
    assert text == "INFO edge.test: sale recorded [request req-9]"
    assert journal.startswith('<4>{"ts": ')
    assert [logs.priority(n) for n in (50, 40, 30, 20, 10)] == [2, 3, 4, 6, 7]


def test_configure_writes_json_when_not_a_terminal_with_priorities_for_the_journal(
    tmp_path: Path,
) -> None:
    script = (
        "import logging; from edge import logs; logs.configure('DEBUG', sys.argv[1]);"
        " log = logging.getLogger('edge.t'); log.warning('disk low'); log.debug('detail');"
        " logging.getLogger('nfc.clf').debug('found tag ID=0123');"
        " log.info('paid with %s, Authorization: Bearer abcdefghijklmnop', sys.argv[2])"
    )

    def run(fmt: str, journal: bool) -> list[str]:
        out = tmp_path / f"stderr-{fmt}-{journal}.txt"
        out.touch()
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if journal:
            st = out.stat()
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        with out.open("ab") as sink:
            subprocess.run(
                [sys.executable, "-c", f"import sys; {script}", fmt, CARD],
                env=env, stderr=sink, check=True, cwd=ROOT, timeout=60,
            )  # fmt: skip
        return out.read_text().splitlines()

    plain = run("auto", journal=False)
    assert [json.loads(line)["msg"] for line in plain] == [
        "disk low",
        "detail",
        "paid with [redacted card number], Authorization: Bearer [redacted]",
    ], "JSON on a file; nfcpy's DEBUG (tag UIDs) held back; secrets masked"
    journal = run("auto", journal=True)
    assert [line[:3] for line in journal] == ["<4>", "<7>", "<6>"]
    assert json.loads(journal[0][3:])["msg"] == "disk low"
    assert run("text", journal=True)[0] == "<4>WARNING edge.t: disk low"


# ---- redaction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"card {CARD} refused", "card [redacted card number] refused"),
        ("pan=4111-1111-1111-1111&x=1", "pan=[redacted card number]&x=1"),
        ("378282246310005 expires 1228", "[redacted card number] expires 1228"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjbF8x.c2lnbmF0dXJl", None),
        ("Authorization: Basic Y2xfMTIzNDU2Nzg6c2VjcmV0", "Authorization: Basic [redacted]"),
        ("client_secret=Zm9vYmFyYmF6&grant_type=x", "client_secret=[redacted]&grant_type=x"),
        ("{'manager_id': 'm-17', 'pin': '593817'}", "{'manager_id': 'm-17', 'pin': '[redacted]'}"),
        ('broker password: "hunter22"', 'broker password: "[redacted]"'),
    ],
)
def test_redaction_masks_card_numbers_tokens_and_secrets(text: str, shown: str | None) -> None:
    masked = logs.redact(text)
    if shown is not None:
        assert masked == shown
    assert not [s for s in ("eyJ", "593817", "4111", "Y2xf") if s in masked]


@pytest.mark.parametrize(
    "text",
    [
        "refund R-0001-01JABC4111111111111111XYZ recorded",  # a ULID holds digit runs
        "fingerprint 3f41111111111111111a9c0d",  # a hex digest too
        "seq 1234567890123 acked",  # Luhn fails
        "pin: true, badge: false",
        "sale 0042-03-20261122-0007 at 2026-11-22T10:15:00.000000Z",
    ],
)
def test_redaction_leaves_ids_digests_and_times_alone(text: str) -> None:
    assert logs.redact(text) == text


def test_the_filter_masks_arguments_exceptions_and_extras_and_survives_bad_arguments() -> None:
    redact = logs.RedactSecrets()
    rec = record("token %s for %s", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjbF8x.c2lnbmF0dXJl", "lane-3")
    rec.__dict__["note"] = f"customer said {CARD}"
    try:
        raise RuntimeError(f"declined {CARD}")
    except RuntimeError:
        rec.exc_info = sys.exc_info()
    assert redact.filter(rec)
    out = json.loads(logs.JsonFormatter().format(rec))
    assert out["msg"] == "token [redacted jwt] for lane-3"
    assert out["note"] == "customer said [redacted card number]"
    assert "RuntimeError: declined [redacted card number]" in out["exc"]
    broken = record("%d refunds", "many")
    assert redact.filter(broken)
    assert broken.getMessage() == "(a log message that could not be formatted: TypeError)"


def test_a_request_id_from_the_register_is_used_only_when_it_is_safe_to_log() -> None:
    assert logs.accepted_request_id("reg-3.0001:a_b") == "reg-3.0001:a_b"
    for bad in (None, "", "x" * 65, "two words", "-lead", "4111111111111111", "id\nforged"):
        assert logs.accepted_request_id(bad) is None, bad
    assert re.fullmatch(r"r[0-9a-f]{15}", logs.new_request_id())


def test_json_lines_true_in_an_older_config_still_means_json(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    assert load_settings(environ={}).logging.format == "auto"
    config.write_text("[logging]\njson_lines = true\n")
    assert load_settings(config, environ={}).logging.format == "json"
    config.write_text('[logging]\njson_lines = true\nformat = "text"\n')
    with pytest.raises(ConfigError, match="json_lines"):
        load_settings(config, environ={})


def test_the_scanner_finds_each_kind_of_secret_and_passes_legitimate_ids(tmp_path: Path) -> None:
    known = known_secrets(source_files())
    assert {known[MANAGER_PIN], known[BADGE], known[WRONG_PIN["pin"]]} == {"PIN", "badge UID"}
    scanner = SecretScanner(known)
    sample = tmp_path / "sample.txt"  # not *.log: the session-wide check would find these
    sample.write_text(
        "\n".join(
            [
                f"paid by {CARD}",
                "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjbF8xMjMifQ.c2lnbmF0dXJlX3ZhbHVl",
                "secret Q2xpZW50U2VjcmV0VmFsdWVfMTIzNDU2Nzg5MEF-dEF",
                f"pin {MANAGER_PIN} and badge {BADGE.lower()}",
                "R-0001-01JABCDEFGHJKMNPQRSTVWXYZ0 seq 1234567890123 event 01JABCDEFGHJKMNPQ"
                " sha256 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
                " 00000000-0000-0000-0000-000000000000 test_the_scanner_finds_each_kind_of_secrets"
                ' "request_id": "r4111111111111111"',  # a request id is never a card number
            ]
        )
    )
    found = [(f.line, f.kind) for f in scanner.scan_file(sample)]
    assert found == [
        (1, "card number"),
        (2, "JWT"),
        (3, "client secret"),
        (4, "PIN"),
        (4, "badge UID"),
    ]
    assert [f.masked for f in scanner.scan_file(sample)][3:] == ["…(6 chars)", "…(14 chars)"]


# ---- the daemon, end to end ------------------------------------------------------------


async def test_the_daemon_logs_json_lines_with_request_and_return_ids_and_no_secret(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = env_for(tmp_path / "data", port)
    env.update(EDGE_LOGGING__LEVEL="DEBUG", EDGE_STORE_ID="0042", EDGE_GATEWAY_ID="gw-03")
    env.pop("JOURNAL_STREAM", None)
    added = cli(
        env, "managers", "add", "m-17", "--name", "Dana", "--badge", BADGE, "--pin-stdin",
        stdin=f"{MANAGER_PIN}\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    creds = add_client(env)
    log = tmp_path / "daemon.log"
    proc = await asyncio.to_thread(launch, env, tmp_path, log)
    base = f"http://127.0.0.1:{port}"
    answers: dict[str, tuple[int, dict[str, Any]]] = {}  # request id -> status, body
    try:
        async with aiohttp.ClientSession() as http:
            basic = aiohttp.encode_basic_auth(creds["client_id"], creds["client_secret"])
            async with http.post(
                f"{base}/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic},
            ) as r:
                token = (await r.json())["access_token"]
                answers[r.headers["X-Request-Id"]] = (r.status, {})

            async def call(path: str, body: Any = None, **headers: str) -> tuple[str, Any]:
                headers["Authorization"] = f"Bearer {token}"
                method = "GET" if body is None else "POST"
                async with http.request(method, base + path, json=body, headers=headers) as r:
                    data = await r.json(content_type=None)
                    answers[r.headers["X-Request-Id"]] = (r.status, data)
                    return r.headers["X-Request-Id"], data

            big = sale(sale_id="S-BIG", order_discount="0")
            big["lines"][0].update(quantity=1, unit_price="150.00", discount="0.00", tax="0.00")
            big["tenders"][0]["amount"] = "150.00"
            sale_rid, _ = await call("/v1/sales", big, **{"X-Request-Id": "reg-3.0001"})
            refund = {"sale_id": "S-BIG", "lines": [{"line_id": "1", "quantity": 1}]}
            refused_rid, refused = await call("/v1/refunds", refund, **{"Idempotency-Key": "k1"})
            wrong_rid, wrong = await call(
                "/v1/refunds", {**refund, "approval": WRONG_PIN}, **{"Idempotency-Key": "k2"}
            )
            approval = {"manager_id": "m-17", "pin": MANAGER_PIN}
            refund_rid, refunded = await call(
                "/v1/refunds", {**refund, "approval": approval}, **{"Idempotency-Key": "k3"}
            )
            card_rid, card = await call(
                "/v1/refunds",
                {**refund, "reason": f"card {CARD}"},
                **{"Idempotency-Key": "k4", "X-Request-Id": "4111111111111111"},
            )
            assert "return_id" in refunded, refunded
            get_rid, _ = await call(f"/v1/refunds/{refunded['return_id']}")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert sale_rid == "reg-3.0001", "the register's own id is kept"
    assert re.fullmatch(r"r[0-9a-f]{15}", card_rid), "a card number is no request id"
    statuses = {rid: status for rid, (status, _) in answers.items()}
    assert [statuses[r] for r in (refused_rid, wrong_rid, refund_rid, card_rid)] == [
        403,
        403,
        201,
        422,
    ]
    for problem in (refused, wrong, card):
        assert problem["request_id"] in answers, "the problem names the request"
    assert (refused["request_id"], card["request_id"]) == (refused_rid, card_rid)

    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert len(lines) > 10
    assert all(set(line) >= KEYS and TS.fullmatch(line["ts"]) for line in lines)
    assert {line["level"] for line in lines} >= {"DEBUG", "INFO"}
    requests = [line for line in lines if line["logger"] == "edge.api.requests"]
    assert {line["request_id"] for line in requests} >= set(answers) | {sale_rid}
    assert all(line["request_id"] in answers for line in lines if "request_id" in line)
    return_id = refunded["return_id"]
    for_refund = [line for line in lines if line.get("request_id") == refund_rid]
    recorded = [line for line in for_refund if line["msg"].startswith(f"refund {return_id} ")]
    assert [line.get("return_id") for line in recorded] == [return_id], for_refund
    answered = [line for line in for_refund if line["logger"] == "edge.api.requests"]
    assert [line.get("return_id") for line in answered] == [return_id], for_refund
    assert [line["return_id"] for line in lines if line.get("request_id") == get_rid] == [return_id]
    others = (refused_rid, wrong_rid, card_rid, sale_rid)
    assert not [line for line in lines if "return_id" in line and line["request_id"] in others]

    token_parts = token.split(".")
    for secret in (
        creds["client_secret"], token, token_parts[2], basic.split()[1], MANAGER_PIN,
        WRONG_PIN["pin"], BADGE, BADGE.lower(), CARD, CARD.replace(" ", ""),
    ):  # fmt: skip
        assert secret not in text, f"a secret in the log: {secret[:4]}..."
    assert scanner_findings(log) == []


def scanner_findings(log: Path) -> list[str]:
    return [str(f) for f in SecretScanner(known_secrets(source_files())).scan_file(log)]


async def test_the_hq_service_logs_json_lines_too(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["EDGE_DATA_DIR"] = str(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge", "hq", "--db", str(tmp_path / "hq.sqlite3"),
        "--broker-port", str(free_port()), "--instance", "hq-logs", "--http", "0", "run",
        env=env, cwd=ROOT, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[dict[str, Any]] = []
    try:
        while not lines or not lines[-1]["msg"].startswith("HQ service hq-logs: broker"):
            raw = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert raw, "the HQ service ended before it started"
            lines.append(json.loads(raw))
        proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    lines += [json.loads(line) for line in (rest or b"").decode().splitlines()]
    assert all(set(line) >= KEYS for line in lines)
    assert lines[-1]["msg"] == "HQ service hq-logs stopped"
