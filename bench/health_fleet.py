"""Simulated gateways that only report: a retained birth with a Will, then a retained health
message every `--interval` s, spread evenly over the interval (as real gateways, started at
different times, are).

Runs as a worker process (`python -m bench.health_fleet --first N --count K ...`), one
MQTT connection per gateway on the asyncio loop; prints `ready` once every gateway is
connected with its birth published, then reports for `--seconds` and prints `done <health
messages sent>`.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop

from .bench_fleet import SimGateway


async def report(port: int, first: int, count: int, interval: float, seconds: float) -> int:
    sims = [SimGateway(port, n) for n in range(first, first + count)]
    for sim in sims:
        sim.task = asyncio.create_task(sim.client.run())
    for sim in sims:
        await sim.client.wait_connected()
    print("ready", flush=True)
    began = time.monotonic()
    due = [began + interval * i / count for i in range(count)]
    sent = 0
    while (now := time.monotonic()) < began + seconds:
        for i, sim in enumerate(sims):
            if due[i] <= now:
                sim.health(sent)
                due[i] += interval
                sent += 1
        await asyncio.sleep(min(0.05, max(0.0, min(due) - time.monotonic())))
    for sim in sims:
        if sim.task is not None:
            sim.task.cancel()
    await asyncio.gather(*(s.task for s in sims if s.task), return_exceptions=True)
    await asyncio.gather(*(sim.client.close() for sim in sims))
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sent = runner.run(report(args.port, args.first, args.count, args.interval, args.seconds))
    print(f"done {sent}", flush=True)


if __name__ == "__main__":
    main()
