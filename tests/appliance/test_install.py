"""scripts/install and scripts/uninstall, run for real into a throwaway root (`--root`).

The root starts with copies of this machine's /etc/passwd, group, shadow and gshadow, so the
service user and groups are made by shadow's own tools (`--prefix`) in the copies; units are
enabled with `systemctl --root`; the package goes into a virtualenv of its own with pip
(from pip's cache, warm from the suite's own install). Nothing of the host is changed.

The tests run in order on one installed root: the first install, the checks of what it laid
out, a second run that must change nothing, an upgrade with data, the uninstall.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.namespaces import in_private_mounts

REPO = Path(__file__).resolve().parents[2]
SOURCE_PARTS = ("pyproject.toml", "README.md", "edge", "config", "systemd", "scripts", "docs")
SHADOW_FILES = ("passwd", "group", "shadow", "gshadow")
USER = "edge-gateway"
STORE_ID, GATEWAY_ID = "0042", "gw-07"
# $ and ` would be expanded by a shell (and systemd) if the install did not escape them
password = "Br0ker$HOME`pw"


@dataclass
class Machine:
    root: Path
    source: Path
    work: Path
    log: Path

    def install(
        self, *args: str, source: Path | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run([str((source or self.source) / "scripts/install"), *args], stdin)

    def uninstall(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.source / "scripts/uninstall"), *args])

    def run(self, command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        done = subprocess.run(
            [*command, "--root", str(self.root)],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        with self.log.open("a") as log:
            log.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}\n")
        return done

    def gateway(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed `edge-gateway` on the installed configuration and data, through its
        Python (the scripts in the root's virtualenv name /opt/edge-gateway/venv), isolated
        (-I) so that this checkout's `edge` is not the one imported."""
        env = {
            "PATH": "/usr/bin:/bin",
            "EDGE_CONFIG": str(self.path("/etc/edge-gateway/gateway.toml")),
            "EDGE_DATA_DIR": str(self.path("/var/lib/edge-gateway")),
        }
        return subprocess.run(
            [str(self.path("/opt/edge-gateway/venv/bin/python")), "-I", "-m", "edge", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def entry(self, name: str, database: str = "passwd") -> list[str]:
        """The fields of `name`'s line in the root's /etc/passwd (or group)."""
        for line in self.path(f"/etc/{database}").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return fields
        raise KeyError(name)

    def ids(self, user: str) -> tuple[int, int]:
        fields = self.entry(user)
        return int(fields[2]), int(fields[3])

    def members(self, group: str) -> list[str]:
        return [m for m in self.entry(group, "group")[3].split(",") if m]

    def fingerprint(self) -> str:
        shown = self.gateway("tls", "show", "--json")
        assert shown.returncode == 0, shown.stderr
        return str(json.loads(shown.stdout)["sha256"])

    def snapshot(self) -> dict[str, tuple[str, int, int, int]]:
        """Every file and directory outside the virtualenv: content digest, mode, owner."""
        seen = {}
        venv = self.path("/opt/edge-gateway/venv")
        for path in sorted(self.root.rglob("*")):
            if path == venv or venv in path.parents or path.name.endswith("-"):
                continue
            info = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            name = str(path.relative_to(self.root))
            seen[name] = (digest, info.st_mode, info.st_uid, info.st_gid)
        return seen


def copy_source(into: Path) -> Path:
    into.mkdir()
    for part in SOURCE_PARTS:
        if (REPO / part).is_dir():
            shutil.copytree(
                REPO / part, into / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(REPO / part, into / part)
    return into


def host_accounts() -> bytes:
    return b"".join(Path("/etc", name).read_bytes() for name in ("passwd", "group"))


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    work = tmp_path_factory.mktemp("appliance")
    root = work / "root"
    (root / "etc").mkdir(parents=True)
    for name in SHADOW_FILES:
        shutil.copy2(Path("/etc", name), root / "etc" / name)
    secret = work / "broker.pw"
    secret.write_text(password + "\n")
    host_before = host_accounts()
    built = Machine(root, copy_source(work / "source"), work, work / "install.log")
    done = built.install(
        "--store-id", STORE_ID, "--gateway-id", GATEWAY_ID, "--currency", "EUR",
        "--broker-host", "mqtt.example.com", "--broker-port", "8883",
        "--broker-username", "store-0042", "--broker-password-file", str(secret), "--with-hq",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    yield built
    assert host_accounts() == host_before, "the host's users and groups were changed"


def test_the_first_install_lays_out_users_files_and_modes(machine: Machine) -> None:
    uid, gid = machine.ids(USER)
    assert gid == int(machine.entry(USER, "group")[2])
    for group in ("input", "dialout", "edge-nfc"):
        assert USER in machine.members(group), group
    assert machine.path("/etc/passwd").read_text().count(f"\n{USER}:") == 1
    assert f"{USER}:" not in Path("/etc/passwd").read_text()

    expected = {
        "/etc/edge-gateway": (0o750, 0, gid),
        "/etc/edge-gateway/gateway.toml": (0o640, 0, gid),
        "/etc/edge-gateway/secrets.env": (0o600, 0, 0),
        "/etc/edge-gateway/hq-secrets.env": (0o600, 0, 0),
        "/var/lib/edge-gateway": (0o700, uid, gid),
        "/var/lib/edge-gateway/ledger.sqlite3": (0o600, uid, gid),
        "/var/lib/edge-gateway/tls/lan-key.pem": (0o600, uid, gid),
        "/var/lib/edge-gateway-hq": (0o700, uid, gid),
        "/opt/edge-gateway": (0o755, 0, 0),
        "/etc/systemd/system/edge-gateway.service": (0o644, 0, 0),
        "/etc/systemd/system/edge-gateway-hq.service": (0o644, 0, 0),
        "/etc/udev/rules.d/70-edge-gateway.rules": (0o644, 0, 0),
        "/usr/local/bin/edge-gateway": (0o755, 0, 0),
    }
    for absolute, (mode, owner, group) in expected.items():
        info = machine.path(absolute).stat()
        assert (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (mode, owner, group), absolute

    for unit in ("edge-gateway.service", "edge-gateway-hq.service"):
        link = machine.path(f"/etc/systemd/system/multi-user.target.wants/{unit}")
        assert os.readlink(link) == f"/etc/systemd/system/{unit}"
        assert (
            machine.path(f"/etc/systemd/system/{unit}").read_bytes()
            == (REPO / "systemd" / unit).read_bytes()
        )
    rules = machine.path("/etc/udev/rules.d/70-edge-gateway.rules").read_bytes()
    assert rules == (REPO / "systemd/udev/70-edge-gateway.rules").read_bytes()

    assert machine.gateway("--version").stdout.strip() == "edge-gateway 0.1.0"
    program = machine.path("/opt/edge-gateway/venv/bin/edge-gateway").read_text()
    assert program.startswith("#!/opt/edge-gateway/venv/bin/python"), program[:120]
    installed = list(machine.path("/opt/edge-gateway/venv/lib").glob("python3*/site-packages/edge"))
    assert len(installed) == 1, "installed as a package, not as a link to the source"
    assert (installed[0] / "app.py").is_file()


def test_the_configuration_has_the_ids_and_the_secret_is_elsewhere(machine: Machine) -> None:
    text = machine.path("/etc/edge-gateway/gateway.toml").read_text()
    config = tomllib.loads(text)
    assert (config["store_id"], config["gateway_id"], config["currency"]) == (
        STORE_ID, GATEWAY_ID, "EUR",
    )  # fmt: skip
    assert config["data_dir"] == "/var/lib/edge-gateway"
    broker = config["hq"]["broker"]
    assert (broker["host"], broker["port"], broker["username"]) == (
        "mqtt.example.com", 8883, "store-0042",
    )  # fmt: skip
    assert "password" not in broker
    assert password not in text
    assert password not in machine.log.read_text(), "the install printed the password"
    # systemd reads EnvironmentFile= values in double quotes as sh does
    secrets = machine.path("/etc/edge-gateway/secrets.env")
    assert broker_password_in(secrets) == password
    config_path = machine.path("/etc/edge-gateway/gateway.toml")
    checked = machine.gateway("config", "check", str(config_path))
    assert checked.returncode == 0, checked.stderr
    assert f"store {STORE_ID}, gateway {GATEWAY_ID}" in checked.stdout


def broker_password_in(secrets: Path) -> str:
    """The password as a shell reads the file, which is how systemd reads a double-quoted
    value of an EnvironmentFile= too."""
    script = '. "$1" && printf %s "$EDGE_HQ__BROKER__PASSWORD"'
    done = subprocess.run(
        ["sh", "-c", script, "sh", str(secrets)], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_the_installed_units_pass_systemd_analyze_verify(machine: Machine) -> None:
    # verify resolves the units' dependencies (sysinit.target ...) inside the root
    shutil.copytree(
        "/usr/lib/systemd/system", machine.path("/usr/lib/systemd/system"), symlinks=True
    )
    units = ["edge-gateway.service", "edge-gateway-hq.service"]
    verified = subprocess.run(
        ["systemd-analyze", "verify", f"--root={machine.root}", *units],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (verified.returncode, verified.stderr) == (0, ""), verified.stderr
    # a unit that does not match the installed layout is caught
    unit = machine.path("/etc/systemd/system/edge-gateway.service")
    good = unit.read_bytes()
    unit.write_bytes(good.replace(b"/venv/bin/edge-gateway", b"/bin/edge-gateway"))
    try:
        broken = subprocess.run(
            ["systemd-analyze", "verify", f"--root={machine.root}", units[0]],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        unit.write_bytes(good)
    assert "is not executable" in broken.stderr, broken.stderr


RULES = "/etc/udev/rules.d/70-edge-gateway.rules"
BROKEN_RULES = 'SUBSYSTEM=="usb", GROUP="edge-nfc", SYMLINK+="edge-gateway/x-$env{ID_PATH"\n'


def udevadm_test(machine: Machine, rules_dir: Path) -> str:
    """`udevadm test` on the loopback device with the rules of `rules_dir` and the root's
    groups, in a private mount namespace: a tmpfs /run takes what udevadm writes and holds
    the rules (/run/udev/rules.d), this machine's own rules in /etc are put out of the way."""
    script = (
        "mount -t tmpfs tmpfs /run && mkdir -p /run/udev/rules.d"
        ' && mount --bind "$1" /run/udev/rules.d && mount --bind "$2" /etc/group'
        " && { [ ! -d /etc/udev/rules.d ] || mount -t tmpfs tmpfs /etc/udev/rules.d; }"
        " && udevadm test /sys/class/net/lo"
    )
    done = subprocess.run(
        in_private_mounts(script, str(rules_dir), str(machine.path("/etc/group"))),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_udev_reads_the_installed_rules_without_a_complaint(machine: Machine) -> None:
    rules = machine.path(RULES)
    output = udevadm_test(machine, rules.parent)
    assert "Reading rules file: /run/udev/rules.d/70-edge-gateway.rules" in output, output
    complaints = [line for line in output.splitlines() if "70-edge-gateway.rules:" in line]
    assert complaints == []
    # and udev does complain about a rule it cannot use, in the same run
    broken = machine.work / "broken-rules"
    broken.mkdir()
    shutil.copy2(rules, broken / rules.name)
    (broken / "71-broken.rules").write_text(BROKEN_RULES)
    output = udevadm_test(machine, broken)
    assert "71-broken.rules:1 Invalid value" in output, output


def test_the_rules_and_the_docs_name_the_same_devices(machine: Machine) -> None:
    rules = machine.path(RULES).read_text()
    lines = [line for line in rules.splitlines() if line and not line.startswith("#")]
    pair = re.compile(r'^(?:[A-Z_]+(?:\{[^}]+\})?(?:==|!=|=|\+=|:=)"[^"]*"(?:, |$))+$')
    assert all(pair.match(line) for line in lines), [ln for ln in lines if not pair.match(ln)]
    labels = set(re.findall(r'LABEL="([^"]+)"', rules))
    assert set(re.findall(r'GOTO="([^"]+)"', rules)) <= labels

    vendors = set()
    for found in re.findall(r'ATTRS\{idVendor\}=="([0-9a-f|]+)"', rules):
        vendors |= set(found.split("|"))
    models = set()
    for vendor, products in re.findall(
        r'ATTR\{idVendor\}=="([0-9a-f]{4})", ATTR\{idProduct\}=="([0-9a-f|]+)"', rules
    ):
        models |= {f"{vendor}:{product}" for product in products.split("|")}

    docs = (REPO / "docs/install.md").read_text()
    section = docs.split("## Devices and udev", 1)[1].split("\n## ", 1)[0]
    row = re.compile(r"^\|[^|]+\|[^|]+\| `([0-9a-f]{4}(?::[0-9a-f]{4})?)` \|", re.M)
    documented = set(row.findall(section))
    assert documented == vendors | models
    assert {"05e0", "0c2e", "05f9", "1eab", "072f:2200", "054c:06c1", "054c:06c3"} <= documented


def test_a_second_run_changes_nothing(machine: Machine) -> None:
    before = machine.snapshot()
    fingerprint = machine.fingerprint()
    again = machine.install()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "edge-gateway 0.1.0 is installed" in again.stdout
    assert "wrote" not in again.stdout, again.stdout
    same_flags = machine.install(
        "--store-id", STORE_ID, "--gateway-id", GATEWAY_ID, "--currency", "EUR"
    )  # fmt: skip
    assert same_flags.returncode == 0, same_flags.stdout + same_flags.stderr
    assert machine.snapshot() == before
    assert machine.fingerprint() == fingerprint

    other = machine.install("--store-id", "0043")
    assert other.returncode == 1
    assert "store_id is 0042" in other.stderr, other.stderr
    assert machine.snapshot() == before


def test_a_new_broker_password_replaces_the_old_one(machine: Machine) -> None:
    rotated = 'new "pass" with \\ and spaces'
    config = machine.path("/etc/edge-gateway/gateway.toml").read_bytes()
    done = machine.install("--broker-password-file", "-", stdin=rotated)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"wrote {machine.path('/etc/edge-gateway/secrets.env')}" in done.stdout
    secrets = machine.path("/etc/edge-gateway/secrets.env")
    assert broker_password_in(secrets) == rotated
    assert secrets.read_text().count("EDGE_HQ__BROKER__PASSWORD=") == 1
    assert machine.path("/etc/edge-gateway/gateway.toml").read_bytes() == config
    assert rotated not in machine.log.read_text()


def test_an_upgrade_keeps_the_data_backs_it_up_and_migrates(machine: Machine) -> None:
    added = machine.gateway("clients", "add", "lane-1", "--role", "register", "--json")
    assert added.returncode == 0, added.stderr
    client_id = json.loads(added.stdout)["client_id"]
    fingerprint = machine.fingerprint()
    newer = copy_source(machine.work / "newer")
    for file, pattern in (("pyproject.toml", "version = "), ("edge/__init__.py", "__version__ = ")):
        text = (newer / file).read_text()
        assert f'{pattern}"0.1.0"' in text
        (newer / file).write_text(text.replace(f'{pattern}"0.1.0"', f'{pattern}"0.1.1"'))

    upgraded = machine.install(source=newer)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert "upgrading edge-gateway 0.1.0 to 0.1.1" in upgraded.stdout
    version = machine.gateway("--version")
    assert version.stdout.strip() == "edge-gateway 0.1.1"

    uid, gid = machine.ids(USER)
    backups = list(machine.path("/var/lib/edge-gateway/backups").iterdir())
    assert len(backups) == 1, backups
    info = backups[0].stat()
    assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o600, uid, gid)
    assert info.st_size > 0
    listed = machine.gateway("clients", "list", "--json")
    assert client_id in {c["client_id"] for c in json.loads(listed.stdout)}
    for path in machine.path("/var/lib/edge-gateway").rglob("*"):
        assert (path.stat().st_uid, path.stat().st_gid) == (uid, gid), path
    assert machine.fingerprint() == fingerprint
    config = tomllib.loads(machine.path("/etc/edge-gateway/gateway.toml").read_text())
    assert (config["store_id"], config["gateway_id"]) == (STORE_ID, GATEWAY_ID)


def test_uninstall_keeps_the_data_and_purge_removes_it(machine: Machine) -> None:
    removed = machine.uninstall()
    assert removed.returncode == 0, removed.stdout + removed.stderr
    for gone in (
        "/opt/edge-gateway",
        "/etc/systemd/system/edge-gateway.service",
        "/etc/systemd/system/edge-gateway-hq.service",
        "/etc/systemd/system/multi-user.target.wants/edge-gateway.service",
        "/etc/udev/rules.d/70-edge-gateway.rules",
        "/usr/local/bin/edge-gateway",
    ):
        assert not os.path.lexists(machine.path(gone)), gone
    for kept in (
        "/etc/edge-gateway/gateway.toml",
        "/etc/edge-gateway/secrets.env",
        "/var/lib/edge-gateway/ledger.sqlite3",
        "/var/lib/edge-gateway/backups",
    ):
        assert machine.path(kept).exists(), kept
    assert "kept" in removed.stdout
    assert USER in machine.members("edge-nfc")

    purged = machine.uninstall("--purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    for gone in ("/etc/edge-gateway", "/var/lib/edge-gateway", "/var/lib/edge-gateway-hq"):
        assert not machine.path(gone).exists(), gone
    with pytest.raises(KeyError):
        machine.ids(USER)
    for group in (USER, "edge-nfc"):
        with pytest.raises(KeyError):
            machine.members(group)
    assert USER not in machine.members("input")
