"""Online-order look-up over MQTT request/response, with a timeout and a small cache.

The request goes to `lookup` with the reply topic in the payload (and, on MQTT 5, as the
Response Topic with the request id as Correlation Data); HQ answers on `lookup-reply`.
No answer within `lookup_timeout_s`, or no broker connection, is `hq-unreachable` for the
register; the question is asked whenever the broker is connected (HQ presence is not needed).
Answers (found or not) are cached for `lookup_cache_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from edge.contract.payloads import LookupMsg, LookupReplyMsg, Malformed, encode, parse
from edge.contract.timefmt import utcnow
from edge.contract.topics import GatewayTopics
from edge.domain.errors import HqUnreachable
from edge.domain.ids import new_ulid
from edge.errors import MqttLinkError
from edge.mqtt.client import Message, MqttClient

CACHE_MAX = 1024


class OrderLookup:
    def __init__(
        self,
        client: MqttClient,
        topics: GatewayTopics,
        *,
        timeout_s: float,
        cache_s: float,
        available: Callable[[], bool],
        errors: Counter[str],
    ) -> None:
        self._client = client
        self._topics = topics
        self._timeout = timeout_s
        self._cache_s = cache_s
        self._available = available
        self._errors = errors
        self._waiting: dict[str, asyncio.Future[LookupReplyMsg]] = {}
        self._cache: OrderedDict[str, tuple[float, dict[str, Any] | None]] = OrderedDict()
        self.asked = 0

    async def ask(self, code: str) -> dict[str, Any] | None:
        """HQ's sale for `code`, or None if HQ has none; HqUnreachable if HQ cannot answer."""
        hit = self._cache.get(code)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        if not self._available():
            raise HqUnreachable(f"{code} is not recorded here and HQ is not reachable now")
        request_id = new_ulid(utcnow())
        fut: asyncio.Future[LookupReplyMsg] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = fut
        reply_to = self._topics.lookup_reply
        # built unvalidated: every value is the gateway's own (the code within the LAN limit)
        body = LookupMsg.model_construct(request_id=request_id, code=code, reply_to=reply_to)
        try:
            self._client.publish(
                self._topics.lookup,
                encode(body),
                qos=1,
                response_topic=reply_to,
                correlation=request_id.encode(),
            )
            self.asked += 1
            async with asyncio.timeout(self._timeout):
                reply = await fut
        except TimeoutError:
            raise HqUnreachable(
                f"HQ did not answer the look-up of {code} within {self._timeout:g} s"
            ) from None
        except MqttLinkError as exc:
            raise HqUnreachable(f"HQ could not be asked about {code}: {exc}") from None
        finally:
            self._waiting.pop(request_id, None)
        sale = reply.sale if reply.found else None
        if reply.found and sale is None:
            raise HqUnreachable(f"HQ said it has {code} but sent no sale")
        self._remember(code, sale)
        return sale

    def forget(self, code: str) -> None:
        self._cache.pop(code, None)

    def on_reply(self, msg: Message) -> None:
        """A `lookup-reply` arrived: resolve the waiting request; raises Malformed."""
        reply = parse(LookupReplyMsg, msg.payload)
        if msg.correlation is not None and msg.correlation != reply.request_id.encode():
            raise Malformed("correlation data does not match request_id")
        fut = self._waiting.get(reply.request_id)
        if fut is None or fut.done():
            self._errors["late_lookup_replies"] += 1
            return
        fut.set_result(reply)

    def _remember(self, code: str, sale: dict[str, Any] | None) -> None:
        if self._cache_s <= 0:
            return
        self._cache[code] = (time.monotonic() + self._cache_s, sale)
        self._cache.move_to_end(code)
        while len(self._cache) > CACHE_MAX:
            self._cache.popitem(last=False)
