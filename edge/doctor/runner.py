"""Every check in order, each from the same settings the daemon would run with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.contract.timefmt import utcnow
from edge.doctor import broker, clock, config, database, devices, hq, lan_tls
from edge.doctor.access import ServiceUser
from edge.doctor.findings import Finding, failed


@dataclass(frozen=True)
class Options:
    config_path: Path | None = None
    user: str | None = None  # the gateway's user; default: the data directory's owner
    timeout_s: float = 5.0


def diagnose(options: Options) -> list[Finding]:
    """The findings, one per check; a configuration that does not load stops at that."""
    settings, findings = config.load(options.config_path)
    if settings is None:
        return findings
    findings.append(config.identity(settings))
    try:
        user = ServiceUser.of_gateway(options.user, settings.data_dir)
    except KeyError:
        findings.append(
            failed("user", f"there is no user {options.user!r}", "give --user the service user")
        )
        return findings
    findings.append(database.data_dir(settings, user))
    findings.append(database.gateway_process(settings))
    conn, ledger_findings = database.ledger(settings, user)
    findings += ledger_findings
    try:
        findings.append(database.disk_space(settings))
        now = utcnow()
        findings.append(clock.ntp(options.timeout_s))
        findings.append(clock.behind_ledger(conn, now))
        findings += devices.check(settings.devices, user, options.timeout_s)
        tag = f"{settings.store_id}-{settings.gateway_id}"
        findings += broker.check(settings.hq, tag, options.timeout_s)
        findings.append(hq.check(settings.hq, conn, utcnow()))
        findings.append(lan_tls.check(settings, utcnow()))
    finally:
        if conn is not None:
            conn.close()
    return findings
