"""Logging for the gateway and the HQ service: one JSON object per line for journald and log
shippers, plain text on a terminal.

Every record logged while the LAN API handles a request names the request (`request_id`),
and once a refund has its Return ID, the refund (`return_id`): the API sets both in context
variables here, so no call site passes them. The code never logs a card number, token,
client secret, PIN or badge UID; the redaction filter on the handler is defence in depth
for what a library or an exception message might carry. Under systemd each line starts
with its syslog priority (`<3>`), which journald strips and stores as the entry's level.
docs/logging.md describes the format for the people who read it.

Standard library only: the gateway, the HQ service and the CLI all import this module.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TextIO

Format = Literal["auto", "json", "text"]

REQUEST_ID: ContextVar[str | None] = ContextVar("edge_request_id", default=None)
RETURN_ID: ContextVar[str | None] = ContextVar("edge_return_id", default=None)

# The keys every JSON line may have, in this order; a field passed with `extra=` follows
# them under its own name (prefixed `extra_` if it would hide one of these).
KEYS = ("ts", "level", "logger", "msg", "request_id", "return_id", "stack", "exc")

# Libraries that say too much at DEBUG: nfcpy logs each tag's UID (a manager's badge is a
# secret), SQLAlchemy every statement with its parameters, aiosqlite every call.
LIBRARY_FLOORS = {
    "nfc": logging.INFO,
    "sqlalchemy": logging.WARNING,
    "aiosqlite": logging.INFO,
    "zeroconf": logging.INFO,
}

# syslog priorities, as journald reads them from a `<N>` prefix (sd-daemon(3)).
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName", "request_id", "return_id"}
)
_REQUEST_ID_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


# ---- request and refund context --------------------------------------------------------


def new_request_id() -> str:
    """16 characters, `r` and 15 hex digits: the letter first keeps a run of digits in it
    from ever reading as a card number to a log scanner."""
    return "r" + secrets.token_hex(8)[1:]


def accepted_request_id(value: str | None) -> str | None:
    """A client's `X-Request-Id` if it can go into a log as is: 1-64 characters of letters,
    digits and `._:-`, and nothing that could be a card number; else None."""
    if value is None or not _REQUEST_ID_OK.fullmatch(value) or card_number_spans(value):
        return None
    return value


@contextmanager
def request_scope(request_id: str) -> Iterator[None]:
    """Within the block every record names `request_id`; a Return ID bound inside ends with
    it, so the next request on the same connection starts clean."""
    request_token = REQUEST_ID.set(request_id)
    return_token = RETURN_ID.set(None)
    try:
        yield
    finally:
        RETURN_ID.reset(return_token)
        REQUEST_ID.reset(request_token)


def bind_return_id(return_id: str) -> None:
    """Name this refund in every record logged for the rest of the request."""
    RETURN_ID.set(return_id)


def current_request_id() -> str | None:
    return REQUEST_ID.get()


# ---- redaction -------------------------------------------------------------------------

_DIGIT_CHAIN = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_DIGITS = re.compile(r"[0-9]+")
_SECRET_PATTERNS = (
    # a JWT (our access tokens): header.payload.signature, base64url
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "[redacted jwt]"),
    # HTTP credentials in a header someone printed
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1\2[redacted]"),
    # key=value, key: value and "key": "value" forms of the names secrets go by
    (
        re.compile(
            r"""(?ix)
            \b(client_secret|secret|password|passwd|pin|access_token|refresh_token|api_key)\b
            (["']?\s*[:=]\s*["']?)
            (?!(?:true|false|null|none)\b)
            [^\s"'&,;})\]]+"""
        ),
        r"\1\2[redacted]",
    ),
)
PAN_MASK = "[redacted card number]"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        total += (d * 2 - 9 if d > 4 else d * 2) if i % 2 else d
    return total % 10 == 0


def card_number_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` may show a card number: whole digit groups joined by single spaces or
    dashes, 13 to 19 digits in all, passing the Luhn check, not glued to other letters or
    digits (so a hex digest or a ULID is not mistaken for one)."""
    spans: list[tuple[int, int]] = []
    for chain in _DIGIT_CHAIN.finditer(text):
        start, end = chain.span()
        if end - start < 13 or (start and text[start - 1].isalnum()):
            continue
        if end < len(text) and text[end].isalnum():
            continue
        groups = [(m.start() + start, m.end() + start) for m in _DIGITS.finditer(chain[0])]
        spans.extend(_pan_windows(text, groups))
    return spans


def _pan_windows(text: str, groups: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    for i, (first, _) in enumerate(groups):
        digits = ""
        for g_start, g_end in groups[i:]:
            digits += text[g_start:g_end]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and _luhn(digits):
                yield first, g_end
                break


def redact(text: str) -> str:
    """`text` with card numbers, tokens and `secret=...`-style values masked."""
    for pattern, mask in _SECRET_PATTERNS:
        text = pattern.sub(mask, text)
    spans = card_number_spans(text)
    for start, end in reversed(_merged(spans)):
        text = text[:start] + PAN_MASK + text[end:]
    return text


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message, exception, stack and `extra` text before any
    formatter sees it. A record whose arguments do not fit its message is logged as such,
    never with the arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError) as exc:
            message = f"(a log message that could not be formatted: {type(exc).__name__})"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


# ---- formatters ------------------------------------------------------------------------


def priority(levelno: int) -> int:
    """The syslog priority of a level: 2 critical, 3 error, 4 warning, 6 info, 7 debug."""
    return next((p for level, p in _PRIORITY if levelno >= level), 7)


def rfc3339(created: float) -> str:
    """UTC with milliseconds: 2026-11-22T10:15:00.123Z."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{stamp}.{int(created * 1000) % 1000:03d}Z"


def _context(record: logging.LogRecord, key: str, var: ContextVar[str | None]) -> str | None:
    value = getattr(record, key, None)
    return value if isinstance(value, str) else var.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the keys in `KEYS` (those without a value left out), then
    any `extra=` fields. With `journal_priority`, each line starts with `<N>` for journald."""

    def __init__(self, *, journal_priority: bool = False) -> None:
        super().__init__()
        self.journal_priority = journal_priority

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, var in (("request_id", REQUEST_ID), ("return_id", RETURN_ID)):
            if (value := _context(record, key, var)) is not None:
                out[key] = value
        if record.stack_info:
            out["stack"] = record.stack_info
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                out[f"extra_{key}" if key in KEYS else key] = value
        line = json.dumps(out, default=str)
        return f"<{priority(record.levelno)}>{line}" if self.journal_priority else line


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message`, then the request and Return ID when there are, for a person
    at a terminal."""

    def __init__(self, *, journal_priority: bool = False) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.journal_priority = journal_priority

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = [
            f"{label} {value}"
            for label, key, var in (
                ("request", "request_id", REQUEST_ID),
                ("return", "return_id", RETURN_ID),
            )
            if (value := _context(record, key, var)) is not None
        ]
        if context:
            line += f" [{', '.join(context)}]"
        return f"<{priority(record.levelno)}>{line}" if self.journal_priority else line


# ---- setup -----------------------------------------------------------------------------


def stream_is_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `stream` is the journal stream systemd gave this process: `JOURNAL_STREAM`
    names its device and inode (systemd.exec(5)), so a child whose stderr was redirected
    elsewhere does not take a pipe for the journal."""
    named = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = named.partition(":")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return f"{st.st_dev}:{st.st_ino}" == f"{device}:{inode}"


def wants_json(fmt: Format, stream: TextIO) -> bool:
    """JSON unless asked for text, or left to `auto` and writing to a terminal."""
    if fmt != "auto":
        return fmt == "json"
    try:
        return not stream.isatty()
    except (OSError, ValueError):
        return True


def quiet_libraries(level: int) -> None:
    """Hold the chatty libraries in `LIBRARY_FLOORS` at their floor, or at `level` if higher."""
    for name, floor in LIBRARY_FLOORS.items():
        logging.getLogger(name).setLevel(max(level, floor))


def configure(
    level: str = "INFO",
    fmt: Format = "auto",
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Send every record at `level` or above to `stream` (stderr) as JSON lines or text,
    secrets masked; the root logger's only handler. Returns the handler."""
    out = sys.stderr if stream is None else stream
    journal = stream_is_journal(out, environ)
    formatter: logging.Formatter = (
        JsonFormatter(journal_priority=journal)
        if wants_json(fmt, out)
        else TextFormatter(journal_priority=journal)
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries(root.level)
    return handler
