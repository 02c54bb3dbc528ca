"""`edge-gateway doctor` run as store IT runs it (the real command, --json and text) against
real parts: a running gateway and HQ on a real mosquitto, real SQLite ledgers (one damaged
on purpose), pseudo-terminals as serial scanners, a broker that needs a password, one that
is not there, and a LAN certificate made by the gateway's own code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from edge.api.tls import certificate_fingerprint, generate_for
from edge.contract.timefmt import utcnow
from edge.doctor.findings import Verdict, exit_code, failed, passed, render, skipped, warned
from edge.ledger.db import apply_migrations, open_sync
from edge.ledger.outbox import Origin, append_events
from edge.settings import load_settings
from tests.appliance.store_rig import PtyScanner
from tests.contract.peers import ContractHq, Gateway, contract_sale
from tests.core.daemon import cli, free_port
from tests.hqlink.broker import Mosquitto

LINE = re.compile(r"^(PASS|SKIP|WARN|FAIL)  (\S+) +(.+)$")
ORIGIN = Origin("0042", "gw-07")


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return cli(env, "doctor", *args)


def doctor_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    out = doctor(env, "--json", *args)
    assert out.stdout, out.stderr
    report = json.loads(out.stdout)
    assert report["exit_code"] == out.returncode
    checks = {c["check"]: c for c in report["checks"]}
    return out.returncode, checks


def verdicts(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: c["verdict"] for name, c in checks.items()}


def environment(config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["EDGE_CONFIG"] = str(config)
    env.update(extra)
    return env


def write_config(folder: Path, text: str, *, ids: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "gateway.toml"
    identity = 'store_id = "0042"\ngateway_id = "gw-07"\n' if ids else ""
    config.write_text(f'{identity}data_dir = "{folder / "data"}"\n{text}')
    config.chmod(0o600)
    return config


def make_ledger(data_dir: Path, *event_ages: timedelta) -> Path:
    """A ledger at the current schema with one pending outbox event per age (negative:
    dated in the future)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "ledger.sqlite3"
    conn = open_sync(path)
    apply_migrations(conn)
    now = utcnow()
    for age in event_ages:
        conn.execute("BEGIN IMMEDIATE")
        append_events(conn, ORIGIN, [("sale.recorded", {"sale_id": "S-1"})], now - age)
        conn.execute("COMMIT")
    conn.close()
    return path


# ---- a working store --------------------------------------------------------------------


async def test_a_working_store_passes_beside_the_running_gateway(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    scanner = PtyScanner()  # a serial scanner: the gateway opens the port side
    port = scanner.port
    gateway = Gateway(
        tmp_path / "store",
        broker.port,
        gateway_id="gw-07",
        config=f'[[devices.serial]]\nid = "lane3-scan"\nlane = "lane-3"\nport = "{port}"\n',
    )
    gateway.workdir.mkdir(parents=True)
    register = gateway.add_client("lane-3-app")
    try:
        with ContractHq(broker.port):
            gateway.start()
            assert gateway.proc is not None
            pid = gateway.proc.pid
            async with register:
                status, _ = await register.call("POST", "/v1/sales", contract_sale("S-DOC-1"))
                assert status == 201
                await register.wait_until(
                    "/readyz", lambda r: r["outbox"]["pending"] == 0 and r["hq_link"]["online"]
                )
                # the host's free space is not this test's business (thresholds are tested
                # below)
                env = {**gateway.env(), "EDGE_STORAGE__FREE_WARN_MB": "0"}
                env["EDGE_STORAGE__FREE_FAIL_MB"] = "0"
                code, checks = await asyncio.to_thread(doctor_json, env)
                text = await asyncio.to_thread(doctor, env)
                body = {"sale_id": "S-DOC-1", "lines": [{"line_id": "1", "quantity": 1}]}
                status, refund = await register.refund(body, "after-doctor")
                assert status == 201, refund  # doctor read the ledger and changed nothing
    finally:
        gateway.stop()
        broker.stop()
        scanner.unplug()
    # NTP is the host's: synchronised, not, or (no systemd, as in CI) not checkable
    ntp = checks.pop("clock-ntp")["verdict"]
    assert ntp in ("PASS", "WARN", "SKIP")
    assert code == (1 if ntp == "WARN" else 0), checks
    assert set(verdicts(checks).values()) <= {"PASS", "SKIP"}, verdicts(checks)
    for name in (
        "config",
        "identity",
        "data-dir",
        "gateway",
        "database",
        "database-schema",
        "disk-space",
        "clock-ledger",
        "device:lane3-scan",
        "broker-tcp",
        "broker-tls",
        "broker-mqtt",
        "hq-link",
        "lan-tls",
    ):
        assert checks[name]["verdict"] == "PASS", checks[name]
    assert f"pid {pid}" in checks["gateway"]["detail"]
    assert "quick_check ok" in checks["database"]["detail"]
    assert "HQ last acked" in checks["hq-link"]["detail"]
    assert checks["hq-link"]["data"]["pending"] == 0
    assert port in checks["device:lane3-scan"]["detail"]
    assert "store 0042, gateway gw-07" in checks["identity"]["detail"]
    # the text form: one aligned line per check, no colour when not on a terminal
    assert text.returncode == code
    lines = text.stdout.splitlines()
    assert len(lines) == len(checks) + 1
    assert all(LINE.match(line) for line in lines), lines
    assert "\033[" not in text.stdout


# ---- what store IT gets told --------------------------------------------------------------


def test_example_ids_a_new_box_and_the_lan_fingerprint(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[lan]\nbind = "127.0.0.1"\n[lan.tls]\nmode = "on"\n[hq]\nenabled = false\n',
        ids=False,
    )
    settings = load_settings(config)
    fingerprint = generate_for(settings)  # as the gateway makes it at first start
    env = environment(config, EDGE_STORAGE__FREE_WARN_MB=str(10**9))
    code, checks = doctor_json(env)
    assert code == 1, checks
    assert "FAIL" not in verdicts(checks).values()
    assert checks["identity"]["verdict"] == "WARN"
    assert "'0001'" in checks["identity"]["detail"]
    assert "'gw-01'" in checks["identity"]["detail"]
    assert checks["database"]["verdict"] == "WARN"
    assert "start the gateway once" in checks["database"]["action"]
    assert checks["gateway"]["verdict"] == "WARN"
    assert checks["disk-space"]["verdict"] == "WARN"
    assert checks["lan-tls"]["verdict"] == "PASS"
    assert checks["lan-tls"]["data"]["fingerprint"] == fingerprint
    assert fingerprint == certificate_fingerprint(settings.data_dir / "tls" / "lan-cert.pem")
    assert fingerprint in checks["lan-tls"]["detail"]


def test_an_invalid_configuration_fails_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[lan]\nport = "eighty"\n')
    code, checks = doctor_json(environment(config))
    assert code == 2
    assert checks["config"]["verdict"] == "FAIL"
    assert checks["config"]["detail"].startswith("lan.port:")
    out = doctor(environment(config))
    assert out.stdout.startswith("FAIL  config  lan.port:")


def test_a_damaged_ledger_fails(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[hq]\nenabled = false\n")
    ledger = make_ledger(tmp_path / "data", *[timedelta(seconds=1)] * 300)
    conn = open_sync(ledger)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = ledger.stat().st_size
    with ledger.open("r+b") as f:  # garbage over pages in the middle; the header stays
        for offset in range(size // 3, 2 * size // 3, 4096):
            f.seek(offset)
            f.write(os.urandom(512))
    code, checks = doctor_json(environment(config))
    assert code == 2
    assert checks["database"]["verdict"] == "FAIL"
    assert "backup" in checks["database"]["action"]


def test_missing_and_inaccessible_devices_fail(tmp_path: Path) -> None:
    scanner = PtyScanner()
    present = scanner.port
    locked = tmp_path / "ttyLOCKED"
    locked.write_bytes(b"")
    locked.chmod(0o600)  # root's: the gateway's user cannot open it
    inputs = tmp_path / "input"
    inputs.mkdir()
    config = write_config(
        tmp_path,
        f"""[hq]
enabled = false
[devices]
input_dir = "{inputs}"
[[devices.keyboards]]
id = "lane1-kbd"
lane = "lane-1"
vendor_product = "0c2e:0b61"
[[devices.serial]]
id = "lane2-gone"
lane = "lane-2"
port = "{tmp_path / "ttyACM9"}"
[[devices.serial]]
id = "lane3-locked"
lane = "lane-3"
port = "{locked}"
[[devices.serial]]
id = "lane4-ok"
lane = "lane-4"
port = "{present}"
[[devices.pcsc]]
id = "lane5-badge"
lane = "lane-5"
reader = "ACR122"
""",
    )
    make_ledger(tmp_path / "data")
    os.chmod(present, 0o666)
    try:
        code, checks = doctor_json(
            environment(config, PCSCLITE_CSOCK_NAME=str(tmp_path / "no-pcscd.comm")),
            "--user",
            "nobody",
        )
    finally:
        scanner.unplug()
    assert code == 2
    assert checks["device:lane1-kbd"]["verdict"] == "FAIL"
    assert "0c2e:0b61" in checks["device:lane1-kbd"]["detail"]
    assert checks["device:lane2-gone"]["verdict"] == "FAIL"
    assert "does not exist" in checks["device:lane2-gone"]["detail"]
    assert checks["device:lane3-locked"]["verdict"] == "FAIL"
    assert "not readable and writable by nobody" in checks["device:lane3-locked"]["detail"]
    assert checks["device:lane4-ok"]["verdict"] == "PASS"
    assert checks["device:lane5-badge"]["verdict"] == "FAIL"
    assert "pcscd is not running" in checks["device:lane5-badge"]["detail"]
    assert checks["devices-attached"]["verdict"] == "PASS"
    # the data directory is root's, so the user named is refused there too
    assert checks["data-dir"]["verdict"] == "FAIL"


def test_a_broker_that_is_not_there_fails(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"[hq.broker]\nport = {free_port()}\n")
    make_ledger(tmp_path / "data")
    env = environment(config, EDGE_STORAGE__FREE_FAIL_MB=str(10**9))
    env["EDGE_STORAGE__FREE_WARN_MB"] = str(10**9)
    code, checks = doctor_json(env, "--timeout", "2")
    assert code == 2
    assert checks["broker-tcp"]["verdict"] == "FAIL"
    assert "cannot reach" in checks["broker-tcp"]["detail"]
    assert checks["broker-tls"]["verdict"] == "SKIP"
    assert checks["broker-mqtt"]["verdict"] == "SKIP"
    assert checks["disk-space"]["verdict"] == "FAIL"


def test_broker_credentials_are_checked_and_never_printed(tmp_path: Path) -> None:
    secret = "s3cr3t-Pa55word"
    passwords = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "edge", secret],
        check=True,
        capture_output=True,
    )
    broker = Mosquitto(
        tmp_path / "broker", extra_conf=f"allow_anonymous false\npassword_file {passwords}\n"
    )
    broker.start()
    try:
        config = write_config(
            tmp_path,
            f'[hq.broker]\nport = {broker.port}\nusername = "edge"\npassword = "{secret}"\n',
        )
        config.chmod(0o644)  # a password where every user can read it
        make_ledger(tmp_path / "data")
        right = doctor(environment(config), "--json")
        config.chmod(0o600)
        wrong = doctor(environment(config, EDGE_HQ__BROKER__PASSWORD="not-the-" + secret), "--json")
        text = doctor(environment(config, EDGE_HQ__BROKER__PASSWORD="not-the-" + secret))
    finally:
        broker.stop()
    good = {c["check"]: c for c in json.loads(right.stdout)["checks"]}
    bad = {c["check"]: c for c in json.loads(wrong.stdout)["checks"]}
    assert good["broker-mqtt"]["verdict"] == "PASS"
    assert "as 'edge'" in good["broker-mqtt"]["detail"]
    assert good["config-secrets"]["verdict"] == "WARN"
    assert bad["broker-mqtt"]["verdict"] == "FAIL"
    assert "refused" in bad["broker-mqtt"]["detail"]
    assert "config-secrets" not in bad
    assert wrong.returncode == 2
    for out in (right, wrong, text):
        assert secret not in out.stdout + out.stderr


def test_a_clock_behind_the_ledger_and_events_hq_never_acked_fail(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"[hq.broker]\nport = {free_port()}\n")
    make_ledger(tmp_path / "data", timedelta(hours=2), timedelta(hours=-3))
    code, checks = doctor_json(environment(config), "--timeout", "1")
    assert code == 2
    clock = checks["clock-ledger"]
    assert clock["verdict"] == "FAIL"
    assert "behind the newest outbox event" in clock["detail"]
    assert "2 h 59 min" in clock["detail"] or "3 h 0 min" in clock["detail"]
    hq = checks["hq-link"]
    assert hq["verdict"] == "FAIL"
    assert hq["data"]["pending"] == 2
    assert "no HQ ack on record" in hq["detail"]
    assert checks["clock-ntp"]["verdict"] in ("PASS", "WARN", "SKIP")


def test_the_verdicts_make_the_exit_code_and_colour_only_when_asked() -> None:
    ok = passed("a", "fine")
    findings = [ok, skipped("b", "not checked here")]
    assert exit_code(findings) == 0
    assert exit_code([*findings, warned("c", "odd", "look")]) == 1
    assert exit_code([*findings, warned("c", "odd", "look"), failed("d", "bad", "fix")]) == 2
    plain = render([ok, failed("longer-name", "bad", "fix it")], colour=False)
    assert plain == ["PASS  a            fine", "FAIL  longer-name  bad \u2014 fix it"]
    coloured = render([ok], colour=True)
    assert coloured[0].startswith("\033[32mPASS\033[0m")
    assert Verdict.SKIP.value == "SKIP"
