"""The configuration: valid, identity set, and no secret in a file others can read."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from edge.doctor.findings import Finding, failed, passed, warned
from edge.errors import ConfigError
from edge.settings import Settings, example_ids, load_settings

_SECRET_KEY = re.compile(r"^\s*password\s*=", re.MULTILINE)


def load(path: Path | None) -> tuple[Settings | None, list[Finding]]:
    """The settings the daemon would run with, or FAIL lines naming each bad key."""
    source = str(path) if path else "built-in defaults and EDGE_* variables"
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return None, [
            failed(
                "config",
                f"{key}: {message}",
                f"fix {key} in {source} (`edge-gateway config check` shows every problem)",
            )
            for key, message in exc.problems
        ]
    return settings, [passed("config", f"valid ({source})"), *_secrets(path)]


def _secrets(path: Path | None) -> list[Finding]:
    """The broker password belongs in the root-only secrets file (docs/operations.md), not
    in a configuration file everyone on the box can read."""
    if path is None:
        return []
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    if mode & stat.S_IROTH and _SECRET_KEY.search(text):
        return [
            warned(
                "config-secrets",
                f"{path} holds a password and is readable by every user",
                "move it to the secrets file as EDGE_HQ__BROKER__PASSWORD, or chmod o-r the file",
            )
        ]
    return []


def identity(settings: Settings) -> Finding:
    left = example_ids(settings)
    if left:
        return warned(
            "identity",
            f"{' and '.join(left)} {'is' if len(left) == 1 else 'are'} still the example"
            f" {'value' if len(left) == 1 else 'values'}",
            "set store_id and gateway_id in the configuration: HQ tells gateways apart by them",
        )
    return passed("identity", f"store {settings.store_id}, gateway {settings.gateway_id}")
