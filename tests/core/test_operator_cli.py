"""Operator commands as a new store IT person meets them: PINs, client names, list headers."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from edge.cli.main import main
from tests.core.daemon import CLI, ROOT, cli, env_for, free_port

GOOD_PIN = "482913"


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment for in-process `main()` calls and for subprocesses alike."""
    env = env_for(tmp_path / "data", free_port())
    for key in [k for k in os.environ if k.startswith("EDGE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("EDGE_"):
            monkeypatch.setenv(key, value)
    return env


def run_main(
    capsys: pytest.CaptureFixture[str], *args: str, stdin: str | None = None
) -> tuple[int, str, str]:
    if stdin is not None:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("sys.stdin", io.StringIO(stdin))
            code = main(list(args))
    else:
        code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_managers_add_without_a_terminal_is_a_one_line_error(data_env: dict[str, str]) -> None:
    out = cli(data_env, "managers", "add", "m-1", "--name", "Ann", stdin="")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    assert "--pin-stdin" in out.stderr
    listed = cli(data_env, "managers", "list", "--json")
    assert json.loads(listed.stdout) == []


@pytest.mark.parametrize(
    ("pin", "reason"),
    [
        ("48213", "6 to 12 digits"),
        ("4821", "6 to 12 digits"),
        ("4829130000123", "6 to 12 digits"),
        ("48a913", "digits only"),
        ("", "digits only"),
        ("123456", "straight run"),
        ("987654", "straight run"),
        ("7890123", "straight run"),
        ("000000", "one repeated digit"),
        ("77777777", "one repeated digit"),
        ("121212", "repeated"),
        ("123123", "repeated"),
        ("112233", "most common"),
        ("159753", "most common"),
    ],
)
def test_weak_or_short_pins_are_refused_from_stdin(
    data_env: dict[str, str], capsys: pytest.CaptureFixture[str], pin: str, reason: str
) -> None:
    args = ("managers", "add", "m-1", "--name", "Ann", "--pin-stdin")
    code, _, err = run_main(capsys, *args, stdin=f"{pin}\n")
    assert code == 2
    assert err.count("\n") == 1, err
    assert reason in err
    code, out, _ = run_main(capsys, "managers", "list", "--json")
    assert json.loads(out) == []


def test_a_good_pin_from_stdin_is_saved(
    data_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("managers", "add", "m-1", "--name", "Ann", "--pin-stdin")
    code, out, err = run_main(capsys, *args, stdin=f"{GOOD_PIN}\n")
    assert (code, err) == (0, "")
    assert GOOD_PIN not in out
    code, out, _ = run_main(capsys, "managers", "list", "--json")
    assert [m["manager_id"] for m in json.loads(out)] == ["m-1"]


class Terminal:
    """The CLI on a pseudo-terminal of its own (no controlling one, so getpass uses it)."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [*CLI, *args],
            env=env,
            cwd=ROOT,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        os.close(slave)
        self.said = b""

    def answer(self, prompt: bytes, text: str) -> None:
        """Wait for `prompt` on stderr (echo is off by then), then type `text`."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        while prompt not in self.said:
            ready, _, _ = select.select([self.proc.stderr], [], [], deadline - time.monotonic())
            assert ready, f"no {prompt!r} prompt; got {self.said!r}"
            chunk = os.read(self.proc.stderr.fileno(), 4096)
            assert chunk, f"exited before {prompt!r}; got {self.said!r}"
            self.said += chunk
        self.said = self.said.split(prompt, 1)[1]
        os.write(self.master, f"{text}\n".encode())

    def finish(self) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=30)
        os.close(self.master)
        return self.proc.returncode, (self.said + err).decode()


def test_an_interactive_pin_is_asked_twice_and_must_match(data_env: dict[str, str]) -> None:
    args = ("managers", "add", "m-1", "--name", "Ann")
    term = Terminal(data_env, *args)
    term.answer(b"PIN: ", GOOD_PIN)
    term.answer(b"PIN again: ", "482914")
    code, err = term.finish()
    assert code == 2
    assert "differ" in err
    assert "Traceback" not in err
    assert json.loads(cli(data_env, "managers", "list", "--json").stdout) == []

    term = Terminal(data_env, *args)
    term.answer(b"PIN: ", GOOD_PIN)
    term.answer(b"PIN again: ", GOOD_PIN)
    code, err = term.finish()
    assert code == 0, err
    assert GOOD_PIN not in err
    listed = json.loads(cli(data_env, "managers", "list", "--json").stdout)
    assert [(m["manager_id"], m["pin"]) for m in listed] == [("m-1", True)]


def test_clients_add_refuses_the_name_of_an_active_client(
    data_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(capsys, "clients", "add", "lane-3", "--role", "register", "--json")
    assert code == 0
    first = json.loads(out)["client_id"]
    code, out, err = run_main(capsys, "clients", "add", "lane-3", "--role", "handheld")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert "lane-3" in err
    assert first in err
    code, out, _ = run_main(capsys, "clients", "list", "--json")
    assert len(json.loads(out)) == 1

    assert run_main(capsys, "clients", "revoke", first)[0] == 0
    code, out, _ = run_main(capsys, "clients", "add", "lane-3", "--role", "register", "--json")
    assert code == 0, "a revoked client's name may be given again"
    assert json.loads(out)["client_id"] != first


def test_list_commands_print_a_header_row(
    data_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_main(capsys, "clients", "list")
    assert out.split() == ["CLIENT", "ID", "ROLE", "LANE", "STATE", "NAME"]
    _, out, _ = run_main(capsys, "managers", "list")
    assert out.split() == ["MANAGER", "APPROVES", "WITH", "STATE", "NAME"]

    run_main(capsys, "clients", "add", "lane-3", "--role", "register")
    args = ("managers", "add", "m-1", "--name", "Ann Lee", "--pin-stdin")
    assert run_main(capsys, *args, stdin=f"{GOOD_PIN}\n")[0] == 0
    _, out, _ = run_main(capsys, "clients", "list")
    header, row = out.splitlines()
    assert header.startswith("CLIENT ID")
    assert row.startswith("cl_")
    assert row.index("register") == header.index("ROLE")
    assert row.endswith("lane-3")
    _, out, _ = run_main(capsys, "managers", "list")
    header, row = out.splitlines()
    assert row.split()[:3] == ["m-1", "pin", "active"]
    assert row.index("Ann Lee") == header.index("NAME")

    config = tmp_path / "devices.toml"
    (tmp_path / "input").mkdir()
    config.write_text(
        f'[devices]\ninput_dir = "{tmp_path}/input"\n'
        f'[[devices.serial]]\nid = "lane5-serial"\nlane = "lane-5"\nport = "{tmp_path}/ttyACM9"\n'
    )
    _, out, _ = run_main(capsys, "--config", str(config), "devices")
    header, row = out.splitlines()
    assert header.split()[:2] == ["KIND", "PATH"]
    assert "STATE" in header
    assert row.startswith("serial")
    assert "lane5-serial -> lane-5" in row
