"""Topic names of the contract, in one place for the gateway, the HQ service and fleet.

Gateway topics live under `{prefix}/{store_id}/{gateway_id}/`. HQ service instances
announce themselves under `{prefix}/_hq/presence/{instance}`: the `_hq` level cannot be a
store id (store ids start with a letter or digit), and the five-level shape never matches
the fleet's `{prefix}/+/+/state` subscription.
"""

from __future__ import annotations

from dataclasses import dataclass

GATEWAY_TOPICS = (
    "state",
    "health",
    "events",
    "acks",
    "alerts",
    "cmd-result",
    "lookup",
    "lookup-reply",
    "recon/digest",
    "recon/report",
)


@dataclass(frozen=True)
class GatewayTopics:
    """Every topic of one gateway."""

    prefix: str
    store_id: str
    gateway_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.store_id}/{self.gateway_id}"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def acks(self) -> str:
        return f"{self.base}/acks"

    @property
    def alerts(self) -> str:
        return f"{self.base}/alerts"

    @property
    def cmd_result(self) -> str:
        return f"{self.base}/cmd-result"

    @property
    def lookup(self) -> str:
        return f"{self.base}/lookup"

    @property
    def lookup_reply(self) -> str:
        return f"{self.base}/lookup-reply"

    @property
    def recon_digest(self) -> str:
        """HQ's reconciliation digest for this gateway (contract v1.1)."""
        return f"{self.base}/recon/digest"

    @property
    def recon_report(self) -> str:
        """The gateway's reconciliation report (contract v1.1)."""
        return f"{self.base}/recon/report"

    @property
    def cmd_filter(self) -> str:
        return f"{self.base}/cmd/+"

    def cmd(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    def presence_filter(self) -> str:
        return hq_presence_filter(self.prefix)


def hq_presence(prefix: str, instance: str) -> str:
    return f"{prefix}/_hq/presence/{instance}"


def hq_presence_filter(prefix: str) -> str:
    return f"{prefix}/_hq/presence/+"


def fleet_filter(prefix: str, leaf: str) -> str:
    """Every gateway's `leaf` topic, e.g. `retail/v1/+/+/state`."""
    return f"{prefix}/+/+/{leaf}"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription: each message goes to one member of `group`."""
    return f"$share/{group}/{topic_filter}"


@dataclass(frozen=True)
class GatewayAddress:
    """Which gateway a topic belongs to, and the leaf after its base."""

    store_id: str
    gateway_id: str
    leaf: str


def parse_gateway_topic(prefix: str, topic: str) -> GatewayAddress | None:
    """Split `{prefix}/{store}/{gateway}/{leaf...}`; None for anything else."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/", 2)
    if len(parts) != 3 or not all(parts) or parts[0].startswith("_"):
        return None
    return GatewayAddress(parts[0], parts[1], parts[2])
