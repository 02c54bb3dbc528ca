"""Where a pydantic validation error points, written once for every boundary that validates
(LAN API bodies, the configuration, MQTT payloads), so each names a field the same way."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import ValidationError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def field_path(loc: Sequence[str | int]) -> str:
    """pydantic's location as the contract writes it: `lines[0].quantity`.

    A key that is not a plain name is quoted (`devices["lane 3"]`), so an odd key cannot
    pass for a path; pydantic's names for validator steps (`function-after[...]`) are left
    out, since a client knows its fields, not our validators.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("function-"):
            continue
        elif _NAME.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def first_error(exc: ValidationError, whole: str) -> str:
    """The first error as one line, `where: what` (`whole` when it is about the whole
    value), for a log line or a rejection reason."""
    first = exc.errors(include_input=False, include_url=False)[0]
    return f"{field_path(first['loc']) or whole}: {first['msg']}"
