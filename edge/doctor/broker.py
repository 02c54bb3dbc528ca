"""The MQTT broker of the HQ link: reachable over TCP, the TLS handshake and its certificate
when TLS is on, and an MQTT CONNECT with the configured credentials accepted.

The CONNECT uses a client id of its own (`edge-doctor-...`), never the gateway's, so a
running gateway's session is not taken over. The password is sent to the broker and
printed nowhere.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import time
from datetime import UTC, datetime
from typing import Any

from edge.api.tls import is_loopback
from edge.doctor.findings import Finding, Verdict, failed, passed, skipped, warned
from edge.hqlink.settings import HqSettings
from edge.mqtt.client import tls_context
from edge.mqtt.settings import BrokerSettings

CERT_WARN_DAYS = 21


def check(hq: HqSettings, client_tag: str, timeout_s: float) -> list[Finding]:
    """`client_tag` (store and gateway) names the test client so a broker's log shows it."""
    if not hq.enabled:
        return [passed("broker", "the HQ link is disabled ([hq] enabled = false)")]
    broker = hq.broker
    where = f"{broker.host}:{broker.port}"
    reach = _tcp(broker, timeout_s)
    if reach.verdict is Verdict.FAIL:
        unreached = f"not checked: {where} is unreachable"
        return [reach, skipped("broker-tls", unreached), skipped("broker-mqtt", unreached)]
    tls = _tls(broker, timeout_s)
    if tls.verdict is Verdict.FAIL:
        return [reach, tls, skipped("broker-mqtt", "not checked: no TLS session")]
    return [reach, tls, _mqtt(broker, f"edge-doctor-{client_tag}", timeout_s)]


def _tcp(broker: BrokerSettings, timeout_s: float) -> Finding:
    where = f"{broker.host}:{broker.port}"
    started = time.monotonic()
    try:
        with socket.create_connection((broker.host, broker.port), timeout=timeout_s):
            pass
    except OSError as exc:
        return failed(
            "broker-tcp",
            f"cannot reach {where}: {exc.strerror or exc}",
            "check that the broker runs and that [hq.broker] host and port are right"
            " (and no firewall is in the way); refunds go on offline meanwhile",
        )
    ms = (time.monotonic() - started) * 1000
    return passed("broker-tcp", f"{where} reachable ({ms:.0f} ms)")


def _tls(broker: BrokerSettings, timeout_s: float) -> Finding:
    if not broker.tls.enabled:
        if is_loopback(broker.host):
            return passed("broker-tls", "off: plain MQTT to a broker on this machine")
        return warned(
            "broker-tls",
            f"off: MQTT to {broker.host} is not encrypted",
            "turn on [hq.broker.tls] (the broker's TLS listener, usually port 8883)",
        )
    try:
        context = tls_context(broker.tls)
    except (OSError, ssl.SSLError) as exc:
        return failed(
            "broker-tls",
            f"cannot load the TLS files in [hq.broker.tls]: {exc}",
            "fix ca_file / cert_file / key_file in [hq.broker.tls]",
        )
    try:
        with (
            socket.create_connection((broker.host, broker.port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=broker.host) as tls,
        ):
            version = tls.version() or "TLS"
            cert = tls.getpeercert() or {}
    except ssl.SSLCertVerificationError as exc:
        return failed(
            "broker-tls",
            f"the broker's certificate is not trusted: {exc.verify_message}",
            "set [hq.broker.tls] ca_file to the CA that signed the broker's certificate,"
            " and connect by the name in it",
        )
    except (OSError, ssl.SSLError) as exc:
        return failed(
            "broker-tls",
            f"TLS handshake with {broker.host}:{broker.port} failed: {exc}",
            "check that this port is the broker's TLS listener",
        )
    not_after = cert.get("notAfter")
    if not isinstance(not_after, str):
        return passed("broker-tls", f"{version}")
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    days = (expires - datetime.now(UTC)).days
    detail = f"{version}; the broker's certificate is valid until {expires:%Y-%m-%d} ({days} d)"
    if days < CERT_WARN_DAYS:
        return warned("broker-tls", detail, "renew the broker's certificate before it expires")
    return passed("broker-tls", detail)


def _mqtt(broker: BrokerSettings, client_id: str, timeout_s: float) -> Finding:
    import paho.mqtt.client as mqtt  # noqa: PLC0415 - loaded by the check that uses it
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    protocol = mqtt.MQTTv5 if broker.protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{client_id}-{secrets.token_hex(3)}",
        protocol=protocol,
    )
    if broker.username is not None:
        password = broker.password.get_secret_value() if broker.password else None
        client.username_pw_set(broker.username, password)
    if broker.tls.enabled:
        client.tls_set_context(tls_context(broker.tls))
    client.connect_timeout = timeout_s
    answers: list[Any] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answers.append(reason)
    who = f"as {broker.username!r}" if broker.username else "without credentials"
    try:
        client.connect(broker.host, broker.port, keepalive=max(5, int(timeout_s) + 5))
        deadline = time.monotonic() + timeout_s
        while not answers and time.monotonic() < deadline:
            client.loop(timeout=0.05)
    except (OSError, ValueError) as exc:
        return failed("broker-mqtt", f"MQTT connect failed: {exc}", "check [hq.broker]")
    finally:
        client.disconnect()
    if not answers:
        return failed(
            "broker-mqtt",
            f"the broker sent no CONNACK within {timeout_s:g} s",
            "check that this port speaks MQTT and that the broker is not overloaded",
        )
    reason = answers[0]
    if reason.is_failure:
        return failed(
            "broker-mqtt",
            f"the broker refused the connection {who}: {reason}",
            "check username and password in [hq.broker] (the password in the secrets file)"
            " and the broker's ACL",
        )
    version = "MQTT 5" if protocol == mqtt.MQTTv5 else "MQTT 3.1.1"
    return passed("broker-mqtt", f"{version} CONNECT accepted {who}")
