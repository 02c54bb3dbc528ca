"""Commands HQ sends on `cmd/{name}`; each result goes to `cmd-result`.

The set is small on purpose: what an HQ operator needs to diagnose or repair the link
without a shell on the store's machine. Commands run one at a time in their own task, so a
slow one never holds up acks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from edge import __version__
from edge.contract.commands import (
    AlertsResult,
    CmdResultMsg,
    PingResult,
    PruneResult,
    ReconcileResult,
    ReplayResult,
)
from edge.contract.health import HealthMsg
from edge.contract.payloads import CommandMsg, Malformed, encode, parse
from edge.contract.timefmt import utcnow
from edge.errors import HqLinkError, MqttLinkError, StorageError
from edge.hqlink.alerts import Alerts
from edge.hqlink.health import HealthReporter
from edge.hqlink.relay import Relay
from edge.ledger import hq_sync
from edge.ledger.ledger import Ledger
from edge.mqtt.client import Message, MqttClient

log = logging.getLogger(__name__)

QUEUE_MAX = 64

Handler = Callable[[dict[str, Any]], Awaitable[BaseModel]]


class CommandFailed(HqLinkError):
    """A command's arguments or action failed; its message goes back to HQ."""


class Commands:
    def __init__(
        self,
        *,
        client: MqttClient,
        result_topic: str,
        ledger: Ledger,
        relay: Relay,
        health: HealthReporter,
        alerts: Alerts,
        errors: Counter[str],
        reconcile: Callable[[], Awaitable[str]],
    ) -> None:
        """`reconcile`: runs the reconciliation checkpoint now and returns its report id."""
        self._client = client
        self._result_topic = result_topic
        self._ledger = ledger
        self._relay = relay
        self._health = health
        self._alerts = alerts
        self._errors = errors
        self._reconcile = reconcile
        self._queue: asyncio.Queue[tuple[str, CommandMsg, bytes | None]] = asyncio.Queue(
            maxsize=QUEUE_MAX
        )
        self._handlers: dict[str, Handler] = {
            "ping": self._ping,
            "health": self._publish_health,
            "alerts": self._list_alerts,
            "replay": self._replay,
            "prune": self._prune,
            "reconcile": self._run_reconcile,
        }

    def submit(self, name: str, msg: Message) -> None:
        """Validate and queue one command; raises Malformed for a bad payload."""
        cmd = parse(CommandMsg, msg.payload)
        try:
            self._queue.put_nowait((name, cmd, msg.correlation))
        except asyncio.QueueFull:
            self._errors["commands_dropped"] += 1
            log.warning("command %s dropped: %d commands already queued", name, QUEUE_MAX)

    async def run(self) -> None:
        while True:
            name, cmd, correlation = await self._queue.get()
            answer: dict[str, Any] | None = None
            error: str | None = None
            handler = self._handlers.get(name)
            if handler is None:
                error = f"unknown command {name!r}"
            else:
                try:
                    answer = (await handler(cmd.args)).model_dump(mode="json", by_alias=True)
                except (CommandFailed, StorageError, MqttLinkError) as exc:
                    error = str(exc)
            result = CmdResultMsg(
                request_id=cmd.request_id,
                command=name,
                ok=error is None,
                result=answer,
                error=error,
                at=utcnow(),
            )
            log.info("command %s (%s): ok=%s", name, cmd.request_id, result.ok)
            try:
                self._client.publish(
                    self._result_topic, encode(result), qos=1, correlation=correlation
                )
            except MqttLinkError:
                log.warning("the result of command %s was lost with the connection", name)

    async def _run_reconcile(self, args: dict[str, Any]) -> ReconcileResult:
        return ReconcileResult(report_id=await self._reconcile())

    async def _ping(self, args: dict[str, Any]) -> PingResult:
        return PingResult(pong=True, version=__version__)

    async def _publish_health(self, args: dict[str, Any]) -> HealthMsg:
        health = await self._health.publish_once()
        if health is None:
            raise CommandFailed("health could not be read from the ledger")
        return health

    async def _list_alerts(self, args: dict[str, Any]) -> AlertsResult:
        return AlertsResult(open=self._alerts.open())

    async def _replay(self, args: dict[str, Any]) -> ReplayResult:
        """Send acked events again from `from_seq` on (HQ lost them, e.g. a restore)."""
        from_seq = args.get("from_seq")
        if not isinstance(from_seq, int) or isinstance(from_seq, bool) or from_seq < 1:
            raise CommandFailed("replay needs an integer from_seq >= 1")
        count, first = await self._ledger.write(lambda c: hq_sync.replay_from(c, from_seq))
        self._relay.rescan()
        return ReplayResult(replayed=count, first_seq_held=first)

    async def _prune(self, args: dict[str, Any]) -> PruneResult:
        return PruneResult(pruned=await self._relay.prune())


def command_name(topic: str, base: str) -> str:
    """`{base}/cmd/{name}` -> name; raises Malformed for a deeper or empty name."""
    name = topic[len(base) + len("/cmd/") :]
    if not name or "/" in name:
        raise Malformed(f"not a command topic: {topic}")
    return name
