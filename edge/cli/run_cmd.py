"""`edge-gateway run`: the daemon in the foreground (systemd runs it like this)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import uvloop

from edge import logs
from edge.cli.common import settings_from
from edge.settings import Settings


def register(sub: Any) -> None:
    parser = sub.add_parser("run", help="run the gateway daemon in the foreground")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    # JSON lines for journald unless stderr is a terminal (docs/logging.md)
    logs.configure(settings.logging.level, settings.logging.format)
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
