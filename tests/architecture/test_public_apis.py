"""The daemon uses libraries through their public APIs only: an upgrade of paho, aiohttp or
any other dependency must not break it silently through a private attribute."""

from __future__ import annotations

import ast
from pathlib import Path

EDGE = Path(__file__).resolve().parents[2] / "edge"


def private_uses(source: str) -> list[tuple[int, str]]:
    """`x._name` where x is not `self` or `cls`: another object's private attribute."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
        ):
            found.append((node.lineno, f"{ast.unparse(node.value)}.{node.attr}"))
    return found


def test_the_checker_finds_a_private_attribute() -> None:
    assert private_uses("client._sock_close()\nself._x = 1\nmsg.__class__\n") == [
        (1, "client._sock_close")
    ]


def test_no_private_attribute_of_another_object_in_edge() -> None:
    offences = [
        f"{path.relative_to(EDGE.parent)}:{line}: {what}"
        for path in sorted(EDGE.rglob("*.py"))
        for line, what in private_uses(path.read_text(encoding="utf-8"))
    ]
    assert offences == []
