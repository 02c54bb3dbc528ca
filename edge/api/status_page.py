"""The status page at `/`: one self-contained HTML document for store IT.

Server-rendered from one `Facts` (`edge.api.status_view`): no build step, no external
asset, no script. It leads with the verdict in colour and what to do about it, then the HQ
link, the outbox with an inline SVG chart of its depth over the last hours, devices and
lanes, alerts and reconciliation, the latest refunds and storage. It reloads itself with
a meta refresh (`?refresh=N` seconds). Every time is in the store's time zone, which the
page names. Every value is escaped; refunds are shown without any token or card data.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime

from edge.api.problems import ProblemError
from edge.api.status_view import NOT_FOUND, DeviceFacts, Facts, oldest_age
from edge.api.verdict import Verdict, age_text, clock_text, count_text, size_text
from edge.domain.money import fmt
from edge.ledger.status import DepthPoint

REFRESH_S = 30
REFRESH_MIN_S, REFRESH_MAX_S = 2, 3600
ALERTS_SHOWN = 20

CSS = """
:root { color-scheme: light; --line: #d0d7de; --muted: #57606a; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 1.2em 1.5em 3em;
       max-width: 1100px; color: #1f2328; background: #fff; }
h1 { font-size: 1.35em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.6em 0 .4em; border-bottom: 1px solid var(--line); }
.sub, .muted { color: var(--muted); }
#verdict { padding: .8em 1em; border-radius: 6px; margin: 1em 0 .4em; }
#verdict h2 { font-size: 1.5em; margin: 0; border: 0; }
#verdict ul { margin: .4em 0 0; padding-left: 1.2em; }
#verdict.working { background: #1a7f37; color: #fff; }
#verdict.degraded { background: #d4a72c; color: #1f2328; }
#verdict.failing { background: #cf222e; color: #fff; }
table { border-collapse: collapse; margin: .3em 0; }
th, td { text-align: left; padding: .25em 1.2em .25em 0; vertical-align: top; }
thead th { border-bottom: 1px solid var(--line); }
table.facts th { font-weight: 600; padding-right: 2em; }
.state { padding: 0 .45em; border-radius: 4px; font-size: .9em; white-space: nowrap; }
.ok { background: #dafbe1; } .warn { background: #fff8c5; } .bad { background: #ffebe9; }
code { font: 13px ui-monospace, monospace; word-break: break-all; }
svg.chart { width: 100%; max-width: 720px; height: auto; border: 1px solid var(--line); }
svg.chart polyline { fill: none; stroke: #0969da; stroke-width: 2; }
svg.chart text { font-size: 11px; fill: currentColor; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def refresh_seconds(asked: str | None) -> int:
    """The reload period asked for with `?refresh=` (whole seconds), kept within bounds."""
    if asked is None:
        return REFRESH_S
    if not (asked.isascii() and asked.isdigit() and len(asked) <= 6):
        message = "whole seconds, up to 6 digits"
        raise ProblemError(
            "validation-failed",
            f"refresh: {message}",
            errors=[{"field": "refresh", "message": message}],
        )
    return min(max(int(asked), REFRESH_MIN_S), REFRESH_MAX_S)


def render(facts: Facts, verdict: Verdict, *, refresh_s: int, nonce: str) -> str:
    title = f"{verdict.level.capitalize()} \u00b7 edge gateway {facts.store_id}/{facts.gateway_id}"
    body = "".join(
        (
            _header(facts, refresh_s),
            _verdict(verdict),
            _link(facts),
            _outbox(facts),
            _devices(facts),
            _lanes(facts),
            _alerts(facts),
            _reconciliation(facts),
            _refunds(facts),
            _storage(facts),
        )
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{refresh_s}">'
        f'<title>{_e(title)}</title><style nonce="{_e(nonce)}">{CSS}</style></head>'
        f"<body>{body}</body></html>\n"
    )


# ---- pieces ------------------------------------------------------------------------------


def _time(at: datetime | None, facts: Facts, *, ago: bool = True) -> str:
    """A time in the store's zone (its full UTC form as a tooltip), with its age."""
    if at is None:
        return '<span class="muted">never</span>'
    shown = clock_text(at, facts.zone, facts.now)
    stamp = at.isoformat(timespec="seconds")
    age = f" ({age_text((facts.now - at).total_seconds())} ago)" if ago else ""
    return f'<time datetime="{_e(stamp)}" title="{_e(stamp)}">{_e(shown)}</time>{_e(age)}'


def _facts_table(table_id: str, rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table; the values are HTML already escaped by the caller."""
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts" id="{table_id}">{cells}</table>'


def _state(text: str, tone: str) -> str:
    return f'<span class="state {tone}">{_e(text)}</span>'


def _header(facts: Facts, refresh_s: int) -> str:
    updated = clock_text(facts.now, facts.zone, facts.now)
    seconds = facts.now.astimezone(facts.zone).strftime(":%S")
    return (
        f"<h1>Edge gateway {_e(facts.store_id)} / {_e(facts.gateway_id)}</h1>"
        f'<p class="sub">Version {_e(facts.version)} \u00b7 up {_e(age_text(facts.uptime_s))}'
        f' \u00b7 updated <span id="updated">{_e(updated + seconds)}</span>, reloads every'
        f' {refresh_s} s \u00b7 times in <span id="zone">{_e(facts.zone_name)}</span></p>'
    )


def _verdict(verdict: Verdict) -> str:
    advice = "".join(f"<li>{_e(line)}</li>" for line in verdict.advice)
    return (
        f'<section id="verdict" class="{_e(verdict.level)}" role="status">'
        f'<h2 id="headline">{_e(verdict.headline)}</h2><ul id="advice">{advice}</ul></section>'
    )


def _link(facts: Facts) -> str:
    link = facts.link
    if not link.configured:
        rows = [("State", _state("not configured", "warn"))]
    else:
        since = _time(link.since, facts, ago=False)
        if link.since is not None:
            since += f" (for {_e(age_text((facts.now - link.since).total_seconds()))})"
        rows = [
            ("State", _state(link.state, "ok" if link.online else "bad")),
            ("Since", since),
            ("Last ack from HQ", _time(link.last_ack_at, facts)),
        ]
    return "<h2>HQ link</h2>" + _facts_table("link", rows)


def _outbox(facts: Facts) -> str:
    outbox = facts.outbox
    if outbox is None:
        return '<h2>Outbox</h2><p id="outbox" class="muted">The ledger cannot be read now.</p>'
    age = oldest_age(facts)
    rows = [
        ("Events waiting for HQ", _e(f"{outbox.pending:,}")),
        ("Refunds among them", _e(f"{outbox.refunds_queued:,}")),
        ("Oldest waiting", "none" if age is None else _e(age_text(age))),
    ]
    if facts.high_water is not None:
        rows.append(("High-water mark", _e(f"{facts.high_water:,}")))
    chart = "" if facts.page is None else depth_chart(facts.page.depth, facts)
    return "<h2>Outbox</h2>" + _facts_table("outbox", rows) + chart


def depth_chart(points: Sequence[DepthPoint], facts: Facts) -> str:
    """The outbox depth over the last hours as an inline SVG line (time on x)."""
    width, height, left, right, top, bottom = 720, 160, 56, 12, 22, 24
    label = "Events waiting for HQ, last hours"
    if len(points) < 2:
        return ""
    first, last = points[0].at, points[-1].at
    span = (last - first).total_seconds() or 1.0
    peak = max(p.pending for p in points)
    scale = max(1, peak)
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(point: DepthPoint) -> str:
        x = left + plot_w * (point.at - first).total_seconds() / span
        y = top + plot_h * (1 - point.pending / scale)
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(p) for p in points)
    hours = span / 3600
    return (
        f'<svg class="chart" id="depth-chart" data-series="depth" role="img"'
        f' viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_e(label)}</title>"
        f'<text x="{left}" y="14">{_e(f"Events waiting for HQ, last {hours:g} h")}'
        f" (now {points[-1].pending:,}, highest {peak:,})</text>"
        f'<text x="4" y="{top + 10}">{scale:,}</text>'
        f'<text x="4" y="{top + plot_h}">0</text>'
        f'<text x="{left}" y="{height - 6}">{_e(clock_text(first, facts.zone, facts.now))}</text>'
        f'<text x="{width - right}" y="{height - 6}" text-anchor="end">now</text>'
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"'
        ' stroke="currentColor" stroke-opacity=".3"/>'
        f'<polyline points="{line}"/></svg>'
    )


def _device_state(d: DeviceFacts) -> str:
    if d.up:
        return _state(d.state, "ok")
    return _state(d.state, "warn" if d.state in ("disconnected", NOT_FOUND) else "bad")


def _devices(facts: Facts) -> str:
    if not facts.devices:
        return '<h2>Devices</h2><p id="devices" class="muted">No device is configured.</p>'
    rows = "".join(
        f"<tr><td>{_e(d.id)}</td><td>{_e(d.kind_name)}</td><td>{_e(d.lane)}</td>"
        f"<td>{_device_state(d)}</td><td>{_time(d.since, facts)}</td><td>{_e(d.detail)}</td></tr>"
        for d in facts.devices
    )
    return (
        '<h2>Devices</h2><table id="devices"><thead><tr><th>Device</th><th>Kind</th>'
        "<th>Lane</th><th>State</th><th>Since</th><th>Detail</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _lanes(facts: Facts) -> str:
    if not facts.lanes:
        return '<h2>Lanes</h2><p id="lanes" class="muted">No lane has a device or a scan.</p>'
    rows = "".join(
        f"<tr><td>{_e(lane.lane)}</td><td>{_e(', '.join(lane.devices) or '-')}</td>"
        f"<td>{lane.scans:,}</td><td>{_time(lane.last_scan_at, facts)}</td></tr>"
        for lane in facts.lanes
    )
    return (
        '<h2>Lanes</h2><table id="lanes"><thead><tr><th>Lane</th><th>Devices</th>'
        "<th>Scans since start</th><th>Last scan</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _alerts(facts: Facts) -> str:
    if not facts.alerts:
        return '<h2>Open alerts</h2><p id="alerts" class="muted">None.</p>'
    shown = sorted(facts.alerts, key=lambda a: a.at, reverse=True)[:ALERTS_SHOWN]
    tone = {"critical": "bad", "warning": "warn", "info": "ok"}
    rows = "".join(
        f"<tr><td>{_e(a.alert)}</td><td>{_state(a.severity, tone[a.severity])}</td>"
        f"<td>{_e(a.subject)}</td><td>{_e(a.detail)}</td><td>{_time(a.at, facts)}</td></tr>"
        for a in shown
    )
    more = len(facts.alerts) - len(shown)
    tail = f'<p class="muted">and {more:,} more</p>' if more > 0 else ""
    return (
        '<h2>Open alerts</h2><table id="alerts"><thead><tr><th>Alert</th><th>Severity</th>'
        "<th>Subject</th><th>Detail</th><th>Since</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{tail}"
    )


def _reconciliation(facts: Facts) -> str:
    counts = facts.mismatches
    if counts is None:
        return '<h2>Reconciliation</h2><p id="mismatches" class="muted">Cannot be read now.</p>'
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.by_kind.items()) if n)
    report = None if facts.page is None else facts.page.latest_report
    latest = '<span class="muted">none yet</span>'
    if report is not None:
        latest = (
            f"{_e(report.report_id)} at {_time(report.generated_at, facts, ago=False)}:"
            f" {report.checked:,} checked, {report.matched:,} matched,"
            f" {report.mismatches:,} mismatches"
        )
    rows = [("Open mismatches", _e(f"{counts.total:,}"))]
    if kinds:
        rows.append(("By kind", _e(kinds)))
    rows.append(("Latest report", latest))
    return "<h2>Reconciliation</h2>" + _facts_table("mismatches", rows)


def _refunds(facts: Facts) -> str:
    page = facts.page
    if page is None:
        return '<h2>Latest refunds</h2><p id="refunds" class="muted">Cannot be read now.</p>'
    summary = (
        f"{count_text(page.refunds_store_day, 'refund')} today,"
        f" {page.ledger.refunds_awaiting_hq:,} awaiting HQ's outcome"
    )
    if not page.refunds:
        return (
            f'<h2>Latest refunds</h2><p class="sub" id="refund-counts">{_e(summary)}</p>'
            '<p id="refunds" class="muted">None yet.</p>'
        )
    tone = {"settled": "ok", "pending": "warn", "declined": "bad"}
    rows = "".join(
        f"<tr><td>{_time(r.created_at, facts, ago=False)}</td><td><code>{_e(r.return_id)}"
        f"</code></td><td>{_e(r.kind.replace('_', ' '))}</td>"
        f"<td>{_e(fmt(r.total, r.currency))} {_e(r.currency)}</td>"
        f"<td>{_e(', '.join(t.replace('_', ' ') for t in r.tenders) or '-')}</td>"
        f"<td>{_state(r.status, tone.get(r.status, 'warn'))}"
        f"{' <span class=muted>offline</span>' if r.offline else ''}</td></tr>"
        for r in page.refunds
    )
    return (
        f'<h2>Latest refunds</h2><p class="sub" id="refund-counts">{_e(summary)}</p>'
        '<table id="refunds"><thead><tr><th>Time</th><th>Return ID</th><th>Kind</th>'
        "<th>Amount</th><th>Tender</th><th>Status</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _storage(facts: Facts) -> str:
    disk = facts.disk
    rows = [
        (
            "Ledger",
            _state("writable", "ok")
            if facts.writable
            else _state("cannot write", "bad") + f" {_e(facts.database_detail)}",
        ),
        ("Disk free", _e(f"{size_text(disk.free)} of {size_text(disk.total)} ({disk.path})")),
        ("Ledger size", _e(size_text(disk.ledger_bytes))),
    ]
    if facts.tls_fingerprint:
        rows.append(
            ("TLS certificate (SHA-256)", f'<code id="tls">{_e(facts.tls_fingerprint)}</code>')
        )
    return "<h2>Storage and identity</h2>" + _facts_table("storage", rows)
