"""`edge-gateway run`: the daemon in the foreground (systemd runs it like this)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any

import uvloop

from edge.cli.common import settings_from
from edge.settings import Settings


def register(sub: Any) -> None:
    parser = sub.add_parser("run", help="run the gateway daemon in the foreground")
    parser.set_defaults(func=_run)


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.logging.json_lines:
        handler.setFormatter(_JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level)


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    setup_logging(settings)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_main(settings))


async def _main(settings: Settings) -> int:
    from edge.app import run_gateway  # noqa: PLC0415 - the entry point is the app's only caller

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_gateway(settings, stop)
    return 0
