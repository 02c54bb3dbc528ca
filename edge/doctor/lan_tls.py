"""The LAN API's HTTPS certificate: the SHA-256 fingerprint registers pin, and its expiry."""

from __future__ import annotations

from datetime import datetime

from edge.api.tls import (
    certificate_paths,
    describe_certificate,
    generated_certificate,
    is_loopback,
    serves_tls,
)
from edge.doctor.findings import Finding, failed, passed, warned
from edge.settings import Settings

CERT_WARN_DAYS = 30


def check(settings: Settings, now: datetime) -> Finding:
    lan = settings.lan
    if not serves_tls(settings):
        if is_loopback(lan.bind):
            return passed("lan-tls", f"plain HTTP, reachable from this machine only ({lan.bind})")
        return warned(
            "lan-tls",
            f"plain HTTP on the store LAN ({lan.bind}, lan.tls.mode = {lan.tls.mode!r})",
            'set lan.tls.mode = "auto" once the registers can pin a certificate',
        )
    cert, _key = certificate_paths(settings)
    if not cert.is_file():
        if generated_certificate(settings):
            return warned(
                "lan-tls",
                f"no certificate at {cert} yet",
                "start the gateway: it makes one at first start",
            )
        return failed(
            "lan-tls",
            f"lan.tls.cert_file {cert} does not exist",
            "put the store CA's certificate there or fix lan.tls.cert_file",
        )
    try:
        info = describe_certificate(cert)
    except (OSError, ValueError) as exc:
        return failed("lan-tls", f"cannot read {cert}: {exc}", "replace the certificate")
    fingerprint, expires = info.fingerprint, info.not_after
    days = (expires - now).days
    renew = (
        "make a new one (edge-gateway tls generate --force, then restart the gateway)"
        if generated_certificate(settings)
        else "get a new one from the store's CA"
    )
    detail = f"SHA-256 {fingerprint}, valid until {expires:%Y-%m-%d} ({days} d)"
    data = {"fingerprint": fingerprint, "not_after": expires.isoformat(), "cert_file": str(cert)}
    if expires <= now:
        return failed(
            "lan-tls",
            f"expired: {detail}",
            f"{renew}; registers must pin the new fingerprint",
            **data,
        )
    if days < CERT_WARN_DAYS:
        return warned(
            "lan-tls",
            detail,
            f"{renew} soon; registers must pin the new fingerprint",
            **data,
        )
    return passed("lan-tls", f"{detail}; registers pin this fingerprint", **data)
