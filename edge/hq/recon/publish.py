"""Publishing digests from the command line (`edge-gateway hq recon digest`): a short-lived
MQTT client, independent of any running HQ service.

The client subscribes to the digest topics it is about to publish on, publishes (QoS 1),
and returns once the broker has delivered each message back to it: proof the broker took
it, without reaching into the client's session. A broker or ACL that refuses the
subscription makes the command fail with a timeout rather than report a send it cannot
confirm.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from edge.errors import MqttLinkError
from edge.mqtt.client import Message, MqttClient
from edge.mqtt.settings import BrokerSettings


async def publish_confirmed(
    broker: BrokerSettings, messages: list[tuple[str, bytes]], *, timeout_s: float = 10.0
) -> None:
    """Publish each (topic, payload) at QoS 1; raises MqttLinkError if the broker has not
    delivered all of them back within `timeout_s`."""
    if not messages:
        return
    waiting = {(t, p) for t, p in messages}
    done = asyncio.Event()

    def received(msg: Message) -> None:
        waiting.discard((msg.topic, msg.payload))
        if not waiting:
            done.set()

    topics = sorted({t for t, _ in messages})
    host = socket.gethostname().replace(".", "-")
    client = MqttClient(
        broker,
        client_id=f"hq-recon-cli-{host}-{os.getpid()}",
        name="hq-recon-cli",
        on_message=received,
        subscriptions=[(t, 1) for t in topics],
    )
    task = asyncio.create_task(client.run())
    try:
        async with asyncio.timeout(timeout_s):
            await client.wait_connected()
            for topic, payload in messages:
                client.publish(topic, payload, qos=1)
            await done.wait()
    except TimeoutError:
        raise MqttLinkError(
            f"the broker did not confirm {len(waiting)} of {len(messages)} digests"
            f" within {timeout_s:g} s"
        ) from None
    finally:
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
